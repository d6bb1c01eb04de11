import Foundation
import ParleySIP

/// A problem with a rule set: a message, with the file and line when known. Its description is
/// `file:line: message`.
public struct RuleProblem: Sendable, Equatable, CustomStringConvertible, Error {
    public var file: String?
    public var line: Int?
    public var message: String

    public init(file: String?, line: Int?, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    /// Splits a Lua message `file:line: text` into its parts.
    public init(luaMessage: String) {
        if let (file, line, rest) = RuleProblem.splitPosition(luaMessage) {
            self.init(file: file, line: line, message: rest)
        } else {
            self.init(file: nil, line: nil, message: luaMessage)
        }
    }

    public var description: String {
        switch (file, line) {
        case let (f?, l?): "\(f):\(l): \(message)"
        case let (f?, nil): "\(f): \(message)"
        default: message
        }
    }

    static func splitPosition(_ s: String) -> (String, Int, String)? {
        let u = Array(s.utf8)
        var i = 0
        while i < u.count, i < 400 {
            if u[i] == UInt8(ascii: ":"), i > 0 {
                var j = i + 1
                while j < u.count, u[j] >= 0x30, u[j] <= 0x39 { j += 1 }
                if j > i + 1, j < u.count, u[j] == UInt8(ascii: ":") {
                    let file = String(decoding: u[0..<i], as: UTF8.self)
                    let line = Int(String(decoding: u[(i + 1)..<j], as: UTF8.self)) ?? 0
                    var k = j + 1
                    if k < u.count, u[k] == UInt8(ascii: " ") { k += 1 }
                    return (file, line, String(decoding: u[k...], as: UTF8.self))
                }
            }
            if u[i] == UInt8(ascii: "\n") { return nil }
            i += 1
        }
        return nil
    }
}

/// One Lua file of a rule set.
public struct RuleFile: Sendable, Equatable {
    /// The path inside the rule directory, with `/` separators (`lib/hours.lua`).
    public var relativePath: String
    /// The name used in messages (`rules/lib/hours.lua`).
    public var displayPath: String
    /// The `require` name (`lib.hours`).
    public var module: String
    public var text: [UInt8]
}

/// A rule set read into memory: its files and its version. Lua states are built from this
/// snapshot, never from the disk, so every state of one generation runs exactly the same code.
public struct RuleSetSnapshot: Sendable, Equatable {
    /// The directory as given.
    public var directory: String
    /// The rule files (not the tests), sorted by path.
    public var files: [RuleFile]
    /// The `*_test.lua` files, sorted by path (display paths).
    public var testFiles: [String]
    /// SHA-256 of the rule files' paths and contents, in hex.
    public var version: String

    /// The first 12 hex digits of the version, for logs and records.
    public var shortVersion: String { String(version.prefix(12)) }

    /// Reads every `*.lua` file under `directory`. Files named `*_test.lua` are tests, never
    /// rules. A file reached through a link that leads outside the directory is a problem.
    public static func read(directory: String) -> (snapshot: RuleSetSnapshot?, problems: [RuleProblem]) {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            return (nil, [RuleProblem(file: directory, line: nil, message: "no such rule directory")])
        }
        var files: [RuleFile] = []
        var tests: [String] = []
        var problems: [RuleProblem] = []
        let listing = listLuaFiles(directory, checkLinks: true)
        for rel in listing.outside {
            problems.append(RuleProblem(file: join(directory, rel), line: nil, message: "links outside the rule directory; not loaded"))
        }
        for rel in listing.files {
            let display = join(directory, rel)
            if rel.hasSuffix("_test.lua") {
                tests.append(display)
                continue
            }
            guard let data = fm.contents(atPath: display) else {
                problems.append(RuleProblem(file: display, line: nil, message: "cannot read the file"))
                continue
            }
            let module = String(rel.dropLast(4)).replacingOccurrences(of: "/", with: ".")
            files.append(RuleFile(relativePath: rel, displayPath: display, module: module, text: [UInt8](data)))
        }
        let snapshot = RuleSetSnapshot(directory: directory, files: files, testFiles: tests,
                                       version: version(of: files))
        return (snapshot, problems)
    }

    /// The content hash of a list of files.
    static func version(of files: [RuleFile]) -> String {
        var h = SHA256()
        for f in files {
            h.update(Array(f.relativePath.utf8))
            h.update([0])
            var n = UInt64(f.text.count).bigEndian
            withUnsafeBytes(of: &n) { h.update(Array($0)) }
            h.update(f.text)
        }
        return h.finalizeHex()
    }

    /// A cheap fingerprint of the directory (paths, sizes, modification times) for polling.
    public static func fingerprint(directory: String) -> String {
        var parts: [String] = []
        for rel in listLuaFiles(directory) {
            let path = join(directory, rel)
            var st = stat()
            if stat(path, &st) == 0 {
                #if canImport(Darwin)
                let mtime = "\(st.st_mtimespec.tv_sec).\(st.st_mtimespec.tv_nsec)"
                #else
                let mtime = "\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)"
                #endif
                parts.append("\(rel)|\(st.st_size)|\(mtime)|\(st.st_ino)")
            } else {
                parts.append("\(rel)|missing")
            }
        }
        return parts.joined(separator: "\n")
    }

    /// `*.lua` paths under a directory, relative, sorted; hidden files and directories skipped.
    static func listLuaFiles(_ directory: String) -> [String] { listLuaFiles(directory, checkLinks: false).files }

    /// With `checkLinks`, entries that are symbolic links are resolved, and those leading outside
    /// the directory are returned apart (and not searched).
    static func listLuaFiles(_ directory: String, checkLinks: Bool) -> (files: [String], outside: [String]) {
        let root = checkLinks ? URL(fileURLWithPath: directory).resolvingSymlinksInPath().standardizedFileURL.path : ""
        let rootPrefix = root.hasSuffix("/") ? root : root + "/"
        var out: [String] = []
        var outside: [String] = []
        func walk(_ rel: String, depth: Int) {
            guard depth < 32, let d = opendir(rel.isEmpty ? directory : join(directory, rel)) else { return }
            defer { closedir(d) }
            while let entry = readdir(d) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
                }
                if name.hasPrefix(".") { continue }
                let child = rel.isEmpty ? name : rel + "/" + name
                let path = join(directory, child)
                var st = stat()
                guard lstat(path, &st) == 0 else { continue }
                var mode = st.st_mode & S_IFMT
                if mode == S_IFLNK {
                    guard stat(path, &st) == 0 else { continue }
                    mode = st.st_mode & S_IFMT
                    if checkLinks {
                        let real = URL(fileURLWithPath: path).resolvingSymlinksInPath().standardizedFileURL.path
                        if !(real == root || real.hasPrefix(rootPrefix)) {
                            if name.hasSuffix(".lua") { outside.append(child) }
                            continue
                        }
                    }
                }
                if mode == S_IFDIR {
                    walk(child, depth: depth + 1)
                } else if mode == S_IFREG, name.hasSuffix(".lua") {
                    out.append(child)
                }
            }
        }
        walk("", depth: 0)
        return (out.sorted(), outside.sorted())
    }

    static func isSymbolicLink(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK
    }

    static func join(_ dir: String, _ rel: String) -> String {
        if dir.isEmpty || dir == "." { return rel }
        return dir.hasSuffix("/") ? dir + rel : dir + "/" + rel
    }
}

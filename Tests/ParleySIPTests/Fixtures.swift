import Foundation
@testable import ParleySIP

/// Loads the byte-exact RFC 4475 torture messages shipped as test resources.
enum Fixtures {
    static let root: URL = {
        guard let url = Bundle.module.url(forResource: "Fixtures", withExtension: nil) else {
            fatalError("test resources missing: Fixtures")
        }
        return url
    }()

    static func bytes(_ folder: String, _ name: String) -> [UInt8] {
        let url = root.appendingPathComponent("rfc4475").appendingPathComponent(folder).appendingPathComponent(name + ".dat")
        guard let data = FileManager.default.contents(atPath: url.path) else { fatalError("missing fixture \(url.path)") }
        return [UInt8](data)
    }

    /// Every fixture as (folder, name).
    static var all: [(String, String)] {
        var out: [(String, String)] = []
        for folder in ["valid", "invalid"] {
            let dir = root.appendingPathComponent("rfc4475").appendingPathComponent(folder)
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
            for n in names.sorted() where n.hasSuffix(".dat") { out.append((folder, String(n.dropLast(4)))) }
        }
        return out
    }

    static func parse(_ folder: String, _ name: String) throws(SIPParseError) -> SIPMessage {
        try SIPParser.parse(bytes(folder, name))
    }
}

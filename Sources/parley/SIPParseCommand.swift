import ArgumentParser
import ParleySIP

import Foundation

/// `parley sip parse FILE`: parse one SIP message and print it, canonical or as JSON.
struct SIPParseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parse",
        abstract: "Parse a SIP message and print it (canonical SIP, or JSON with --json).",
        discussion: "Exits 0 when the message parses and passes validation; otherwise prints 'error: ' with what is wrong and where, and exits 1."
    )

    @Argument(help: "The file holding one message, or '-' for standard input.")
    var file: String

    @Flag(help: "Print a JSON view of the typed fields instead of canonical SIP.")
    var json = false

    @Flag(help: "Frame as a stream (Content-Length required for a body) instead of a datagram.")
    var stream = false

    func run() throws {
        let bytes: [UInt8]
        do {
            bytes = try readInput(file)
        } catch let e as InputError {
            printError(e.message)
            throw ExitCode(1)
        }
        let message: SIPMessage
        do {
            message = try SIPParser.parse(bytes, framing: stream ? .stream : .datagram)
        } catch {
            var text = error.description
            switch error.disposition {
            case .respond(let code): text += " (answer: \(code))"
            case .drop: text += " (answer: drop)"
            }
            printError(text)
            throw ExitCode(1)
        }
        if json {
            print(MessageJSON.render(message))
        } else {
            FileHandle.standardOutput.write(Data(message.canonicalized().serialized()))
        }
    }
}

struct InputError: Error { var message: String }

/// Reads a whole file, or standard input for "-".
func readInput(_ path: String) throws -> [UInt8] {
    if path == "-" { return [UInt8](FileHandle.standardInput.readDataToEndOfFile()) }
    guard let data = FileManager.default.contents(atPath: path) else {
        throw InputError(message: "cannot read \(path)")
    }
    return [UInt8](data)
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data("error: \(text)\n".utf8))
}

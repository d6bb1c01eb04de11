import Foundation
import NIOCore
import NIOPosix
import ParleySIP
import Testing

@testable import ParleyTransport

/// SIP over TLS on loopback: a TLS listener with a certificate made for the test (openssl), a
/// client that checks it against that certificate as its CA, a request and its response over
/// the one connection; and a client that trusts another CA is refused.
@Suite(.serialized) struct TLSTransportTests {
    /// A self-signed certificate for 127.0.0.1 and its key, in a fresh directory.
    static func makeCertificate() throws -> (cert: String, key: String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("parley-tls-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        p.arguments = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                       "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", dir + "/key.pem", "-out", dir + "/cert.pem"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        return (dir + "/cert.pem", dir + "/key.pem")
    }

    static let options = "OPTIONS sip:server@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bKtls1\r\nMax-Forwards: 70\r\nFrom: <sip:client@127.0.0.1>;tag=1\r\nTo: <sip:server@127.0.0.1>\r\nCall-ID: tls-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"

    final class Inbox: @unchecked Sendable {
        let lock = NSLock()
        var messages: [(SIPMessage, SIPSource)] = []
        func add(_ m: SIPMessage, _ s: SIPSource) { lock.withLock { messages.append((m, s)) } }
        var all: [(SIPMessage, SIPSource)] { lock.withLock { messages } }
    }

    @Test func aRequestAndItsResponseCrossTLS() async throws {
        let (cert, key) = try Self.makeCertificate()
        let group = MultiThreadedEventLoopGroup.singleton
        let loop = group.next()
        let serverInbox = Inbox(), clientInbox = Inbox()
        let server = SIPTransport(loop: loop)
        server.tls = try SIPTLS.load(certificate: cert, key: key, ca: nil, peers: .chain)
        server.onMessage = { m, s in
            serverInbox.add(m, s)
            if m.isRequest { server.sendResponse(SIPTransport.makeResponse(to: m, code: 200, toTag: "srv"), toRequestFrom: s) }
        }
        let listener = try await server.listen(.tls, on: try SocketAddress(ipAddress: "127.0.0.1", port: 0)).get()
        let client = SIPTransport(loop: loop)
        client.tls = try SIPTLS.load(certificate: nil, key: nil, ca: cert, peers: .chain)
        client.onMessage = { m, s in clientInbox.add(m, s) }
        _ = try await client.listen(.udp, on: try SocketAddress(ipAddress: "127.0.0.1", port: 0)).get()
        try await client.send(bytes: Array(Self.options.utf8), to: SIPDestination(transport: .tls, address: listener.local)).get()
        for _ in 0..<100 where clientInbox.all.isEmpty { try await Task.sleep(nanoseconds: 20_000_000) }
        #expect(serverInbox.all.first?.1.transport == .tls)
        #expect(serverInbox.all.first?.0.method == .options)
        #expect(clientInbox.all.first?.0.statusCode == 200)
        #expect(clientInbox.all.first?.1.transport == .tls)
    }

    @Test func aClientThatDoesNotTrustTheCertificateIsRefused() async throws {
        let (cert, key) = try Self.makeCertificate()
        let (otherCA, _) = try Self.makeCertificate()
        let group = MultiThreadedEventLoopGroup.singleton
        let loop = group.next()
        let serverInbox = Inbox()
        let server = SIPTransport(loop: loop)
        server.tls = try SIPTLS.load(certificate: cert, key: key, ca: nil, peers: .chain)
        server.onMessage = { m, s in serverInbox.add(m, s) }
        let listener = try await server.listen(.tls, on: try SocketAddress(ipAddress: "127.0.0.1", port: 0)).get()
        let client = SIPTransport(loop: loop)
        client.tls = try SIPTLS.load(certificate: nil, key: nil, ca: otherCA, peers: .chain)
        // The handshake fails: the send may fail or the bytes die with the connection.
        _ = try? await client.send(bytes: Array(Self.options.utf8), to: SIPDestination(transport: .tls, address: listener.local)).get()
        try await Task.sleep(nanoseconds: 300_000_000)
        #expect(serverInbox.all.isEmpty)
    }

    @Test func withoutTLSConfiguredATLSListenerOrDestinationFails() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let t = SIPTransport(loop: group.next())
        await #expect(throws: TransportError.self) { try await t.listen(.tls, on: try SocketAddress(ipAddress: "127.0.0.1", port: 0)).get() }
        await #expect(throws: (any Error).self) {
            try await t.send(bytes: [1], to: SIPDestination(transport: .tls, address: try SocketAddress(ipAddress: "127.0.0.1", port: 1))).get()
        }
    }

    @Test func aMissingCertificateFileIsAnError() {
        #expect(throws: (any Error).self) { try SIPTLS.load(certificate: "/nonexistent.pem", key: "/nonexistent.key", ca: nil, peers: .chain) }
    }
}

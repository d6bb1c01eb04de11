import NIOCore
import NIOSSL

/// SIP over TLS (RFC 3261 section 26, RFC 5630): the certificate Parley shows on its TLS
/// listeners, and how it checks the peers it connects to. Loaded from PEM files once at start;
/// a file that does not load stops start-up with the file and the reason.
public struct SIPTLS: Sendable {
    /// What TLS listeners present (nil: this transport has no TLS listener).
    public var server: NIOSSLContext?
    /// What outgoing TLS connections use.
    public var client: NIOSSLContext

    public init(server: NIOSSLContext?, client: NIOSSLContext) {
        self.server = server
        self.client = client
    }

    /// How the certificates of peers Parley connects to are checked.
    public enum PeerCheck: String, Sendable, CaseIterable {
        /// Against the CA file (or the system's roots), the chain only: SIP peers are often
        /// reached by address, so the name is not compared.
        case chain
        /// Not at all (a lab with self-signed peers). Never on a network.
        case none
    }

    /// Contexts from PEM files: `certificate` (the chain, leaf first) and `key` for listeners;
    /// `ca` (nil: the system's roots) for checking peers.
    public static func load(certificate: String?, key: String?, ca: String?, peers: PeerCheck) throws -> SIPTLS {
        var server: NIOSSLContext?
        if let certificate, let key {
            let chain = try NIOSSLCertificate.fromPEMFile(certificate).map { NIOSSLCertificateSource.certificate($0) }
            guard !chain.isEmpty else { throw TLSSetupError("\(certificate) holds no certificate") }
            let privateKey = try NIOSSLPrivateKey(file: key, format: .pem)
            var c = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(privateKey))
            c.minimumTLSVersion = .tlsv12
            server = try NIOSSLContext(configuration: c)
        }
        var c = TLSConfiguration.makeClientConfiguration()
        c.minimumTLSVersion = .tlsv12
        switch peers {
        case .chain:
            c.certificateVerification = .noHostnameVerification
            if let ca { c.trustRoots = .file(ca) }
        case .none:
            c.certificateVerification = .none
        }
        return SIPTLS(server: server, client: try NIOSSLContext(configuration: c))
    }
}

/// A TLS file that does not do.
public struct TLSSetupError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

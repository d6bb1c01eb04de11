import ArgumentParser
import ParleyTransport

/// `--trusted`, shared by `parley proxy` and `parley registrar`: peers exempt from the
/// per-source limits (request rate, amplification bound, connections per address), which are
/// on for everyone else (docs/security.md).
struct SourceOptions: ParsableArguments {
    @Option(name: .customLong("trusted"), help: "A network exempt from the per-source limits, e.g. 10.0.0.0/8 or 127.0.0.1 (repeat).")
    var trusted: [String] = []

    func validate() throws {
        for t in trusted where IPNetwork(t) == nil {
            throw ValidationError("--trusted '\(t)' is not an IP address or network (10.0.0.0/8, 2001:db8::/32)")
        }
    }

    var networks: [IPNetwork] { trusted.compactMap(IPNetwork.init) }

    /// Applies them to a transport (on its event loop).
    func apply(to transport: SIPTransport) {
        transport.sourceGuard?.settings.trusted = networks
        transport.connectionLimits.trusted = networks
    }
}

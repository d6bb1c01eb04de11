import ArgumentParser

@main
struct Parley: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parley",
        abstract: "A SIP contact-center router whose routing decisions are Lua rules.",
        version: "0.1.0",
        subcommands: [SIPCommand.self, ProxyCommand.self, RegistrarCommand.self, RegistrationsCommand.self, TestCommand.self, RulesCommand.self, ServeCommand.self, CallsCommand.self, StatsCommand.self, DemoCommand.self,
                      AgentsCommand.self, AgentCommandGroup.self, QueuesCommand.self, ReloadCommand.self, TraceCommand.self]
    )
}

struct SIPCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sip",
        abstract: "Tools for SIP messages.",
        subcommands: [SIPParseCommand.self]
    )
}

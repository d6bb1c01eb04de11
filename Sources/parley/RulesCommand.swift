import ArgumentParser
import Foundation
import ParleyRules

/// `parley rules ...`: tools for rule sets.
struct RulesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules",
        abstract: "Tools for Lua rule sets.",
        subcommands: [RulesCheckCommand.self]
    )
}

/// `parley rules check [DIR]`: load a rule set exactly as a reload would.
struct RulesCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Compile and load a rule set as a reload would, and report every problem.",
        discussion: """
            Reads every rule file (not the *_test.lua ones), compiles each, runs init.lua under the \
            hook limits and checks that classify, select_agent, order_registrations and \
            handoff_encoding are functions where defined. Prints each problem as file:line: message. \
            Exits 0 only when the rule set would load.
            """
    )

    @Argument(help: "The rule directory.")
    var directory: String = "rules"

    func run() throws {
        let (version, problems) = RuleStore.check(directory: directory)
        for p in problems { print(p.description) }
        if let version, problems.isEmpty {
            print("\(directory): ok, version \(version.prefix(12))")
            return
        }
        print("\(directory): \(problems.count) problem\(problems.count == 1 ? "" : "s"); it would not load")
        throw ExitCode(1)
    }
}

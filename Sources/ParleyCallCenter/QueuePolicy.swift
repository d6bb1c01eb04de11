/// How one queue (one call type) behaves when no agent takes its calls at once.
///
/// A call no agent can take now waits in its queue: the caller hears 182 Queued, or is
/// connected to the queue's treatment (music on hold, an announcement) by the buffer server.
/// Waiting callers are served by priority, then by arrival. A caller who waits longer than
/// `maxWait`, or arrives when `maxLength` callers already wait, overflows: to a treatment, or
/// answered with `status` (a caller already connected to a treatment is hung up instead).
public struct QueuePolicy: Sendable, Equatable {
    /// What happens to a caller who overflows the queue.
    public enum Overflow: Sendable, Equatable {
        /// Answered with the queue's `status` (or hung up, if already on a treatment).
        case status
        /// Connected to this treatment system for good (it ends the call, e.g. an announcement).
        case treatment(String)
    }

    /// What happens to a call when no agent serving its queue is logged in.
    public enum NoAgent: String, Sendable, Equatable, CaseIterable {
        /// Answered with `status` at once.
        case reject
        /// Queued anyway, until an agent logs in or `maxWait` runs out.
        case queue
    }

    /// The longest a caller waits for an agent.
    public var maxWait: Duration
    /// The most callers waiting at once; nil: no limit.
    public var maxLength: Int?
    public var noAgent: NoAgent
    /// The final status for a rejected or overflowing call (3xx-6xx).
    public var status: Int
    /// The treatment a waiting caller is connected to (nil: 182 Queued and ringback only).
    public var treatment: String?
    public var overflow: Overflow
    /// The service level's threshold: a call answered within it counts as served in time.
    public var serviceLevel: Duration = .seconds(20)

    public init(maxWait: Duration = .seconds(60), maxLength: Int? = nil, noAgent: NoAgent = .reject, status: Int = 480,
                treatment: String? = nil, overflow: Overflow = .status) {
        self.maxWait = maxWait
        self.maxLength = maxLength
        self.noAgent = noAgent
        self.status = status
        self.treatment = treatment
        self.overflow = overflow
    }

    /// The reason phrase sent with `status`.
    public static func reason(for status: Int) -> String {
        switch status {
        case 404: "Not Found"
        case 408: "Request Timeout"
        case 480: "Temporarily Unavailable"
        case 486: "Busy Here"
        case 487: "Request Terminated"
        case 503: "Service Unavailable"
        case 600: "Busy Everywhere"
        case 603: "Decline"
        default: status >= 600 ? "Global Failure" : status >= 500 ? "Server Error" : status >= 400 ? "Request Failure" : "Redirection"
        }
    }
}

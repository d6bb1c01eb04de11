import Dispatch
import Foundation

/// Blocks until SIGINT or SIGTERM arrives (the long-running commands' way to stop cleanly).
func waitForTerminationSignal() {
    let done = DispatchSemaphore(value: 0)
    var sources: [DispatchSourceSignal] = []
    for sig in [SIGINT, SIGTERM] {
        signal(sig, SIG_IGN)
        let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        s.setEventHandler { done.signal() }
        s.resume()
        sources.append(s)
    }
    done.wait()
    for s in sources { s.cancel() }
}

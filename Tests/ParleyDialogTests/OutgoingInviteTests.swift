import ParleyDialog
import Testing

/// The outgoing INVITE's CANCEL rules, every state and transition (RFC 3261 9.1, 13.2.2.4).
@Suite struct OutgoingInviteTests {
    @Test func aCancelWaitsForTheFirstProvisional() {
        var i = OutgoingInvite()
        #expect(i.cancel() == [])
        #expect(i.state == .calling(cancelWanted: true))
        #expect(i.cancelAsked && !i.cancelSent)
        // a 100 is a provisional too: the CANCEL goes with it, nothing is passed on
        #expect(i.received(status: 100) == [.sendCancel])
        #expect(i.state == .cancelling && i.cancelSent)
        #expect(i.received(status: 180) == [])  // ringing after the CANCEL: not passed on
        #expect(i.received(status: 487) == [.failed(code: 487)])
        #expect(i.state == .failed(code: 487))
        #expect(i.received(status: 487) == [])  // a retransmission
        #expect(i.cancel() == [])
    }

    @Test func ringingThenCancelledAtOnce() {
        var i = OutgoingInvite()
        #expect(i.received(status: 180) == [.provisional(code: 180)])
        #expect(i.received(status: 183) == [.provisional(code: 183)])
        #expect(i.state == .early)
        #expect(i.cancel() == [.sendCancel])
        #expect(i.cancel() == [])  // once
        #expect(i.state == .cancelling)
    }

    /// The CANCEL crosses the 2xx: the dialog exists, the 2xx is ACKed and reported unwanted.
    @Test func aTwoHundredCrossingTheCancelIsUnwanted() {
        var i = OutgoingInvite()
        _ = i.received(status: 180)
        _ = i.cancel()
        #expect(i.received(status: 200) == [.answered(unwanted: true)])
        #expect(i.state == .answered(unwanted: true))
        #expect(i.received(status: 200) == [.ackAgain])
        #expect(i.received(status: 487) == [])
    }

    /// Given up before any provisional, then answered: unwanted, no CANCEL ever sent.
    @Test func answeredAfterBeingGivenUpSilently() {
        var i = OutgoingInvite()
        _ = i.cancel()
        #expect(i.received(status: 200) == [.answered(unwanted: true)])
        #expect(!i.cancelSent)
    }

    @Test func answeredPlainly() {
        var i = OutgoingInvite()
        #expect(i.received(status: 200) == [.answered(unwanted: false)])
        #expect(i.isFinal && !i.hadProvisional)
        #expect(i.cancel() == [])  // too late to cancel: the owner hangs up instead
        #expect(i.received(status: 180) == [])
        #expect(i.received(status: 200) == [.ackAgain])
        #expect(i.received(status: 486) == [])
    }

    @Test func failuresAndTransactionEnds() {
        var busy = OutgoingInvite()
        _ = busy.received(status: 180)
        #expect(busy.received(status: 486) == [.failed(code: 486)])
        #expect(busy.received(status: 200) == [])  // nothing after a final failure
        #expect(busy.transactionFailed(code: 408) == [])

        var silent = OutgoingInvite()
        #expect(silent.transactionFailed(code: 408) == [.failed(code: 408)])
        #expect(silent.state == .failed(code: 408))

        var cancelledSilent = OutgoingInvite()
        _ = cancelledSilent.cancel()
        #expect(cancelledSilent.transactionFailed(code: 408) == [.failed(code: 408)])
        #expect(cancelledSilent.received(status: 999) == [])
    }
}

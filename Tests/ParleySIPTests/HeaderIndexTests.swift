import Testing
@testable import ParleySIP

/// Validation indexes every known header of a message in fixed, inline room.
@Suite("Header index")
struct HeaderIndexTests {
    @Test("every known header has a slot in the index")
    func everyKnownHeaderFits() {
        for k in KnownHeader.allCases {
            #expect(Int(k.rawValue) < HeaderIndex.capacity, "\(k) has no slot")
        }
    }

    @Test("the first line and the count of each known header")
    func firstAndCount() throws {
        var index = HeaderIndex()
        let last = try #require(KnownHeader.allCases.last)
        index.note(.via, at: 0)
        index.note(.via, at: 3)
        index.note(last, at: 7)
        #expect(index.first(.via) == 0)
        #expect(index.count(.via) == 2)
        #expect(index.first(last) == 7)
        #expect(index.count(last) == 1)
        #expect(index.first(.contact) == nil)
        #expect(index.count(.contact) == 0)
    }
}

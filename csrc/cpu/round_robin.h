// A round-robin schedule of the off-diagonal tile pairs (I, J), I < J, of a self-sum.
//
// Circle method: every round pairs each tile with at most one other, so the pairs of one round
// can run in parallel while each updates the rows of both of its tiles without any two threads
// writing the same rows, and without per-thread copies of the accumulators. With an odd number of
// tiles one extra "bye" tile is added; its pairs are skipped.
#pragma once

#include <cstdint>
#include <utility>

namespace lcw_fast::cpu {

class RoundRobin {
 public:
  explicit RoundRobin(int64_t tiles) : tiles_(tiles), players_(tiles + (tiles & 1)) {}

  int64_t rounds() const { return players_ > 1 ? players_ - 1 : 0; }
  int64_t slots() const { return players_ / 2; }

  // The pair (first < second) of `slot` in `round`; false where it involves the bye.
  bool pair(int64_t round, int64_t slot, int64_t& first, int64_t& second) const {
    const int64_t ring = players_ - 1;  // the last player stays put, the others rotate
    int64_t a = slot == 0 ? ring : (round + slot) % ring;
    int64_t b = (round - slot + ring) % ring;
    if (a > b) std::swap(a, b);
    first = a;
    second = b;
    return second < tiles_;
  }

 private:
  int64_t tiles_, players_;
};

}  // namespace lcw_fast::cpu

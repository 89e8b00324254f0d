// A round-robin schedule of the pairs (A, B), A < B, of `players` blocks of rows (for the self-sum
// gradient: groups of tiles).
//
// Circle method: every round pairs each block with at most one other, so the pairs of one round
// can run in parallel while each updates the rows of both of its blocks, without any two threads
// writing the same rows and without per-thread copies of the accumulators. With an odd number of
// blocks one extra "bye" block is added; its pairs are skipped.
#pragma once

#include <cstdint>
#include <utility>

namespace lcw_fast::cpu {

class RoundRobin {
 public:
  explicit RoundRobin(int64_t blocks) : blocks_(blocks), players_(blocks + (blocks & 1)) {}

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
    return second < blocks_;
  }

 private:
  int64_t blocks_, players_;
};

}  // namespace lcw_fast::cpu

#pragma once
// `tpusim explain --html FILE`: one self-contained page (inline CSS and script, the recording
// embedded as JSON, nothing fetched) that animates an explain run: step, play, pause, scrub to
// a cycle (or open at one with `#t=CYCLE`); the array with each PE's weight, activation and
// psum (dashed where it lies outside the weight tile of the stream passing: the PEs a small
// K_t or N_t leaves idle), the skewed inputs waiting at the left edge, the results leaving the
// bottom and the accumulators filling, and every instruction's state on its unit (queued,
// waiting and why, busy, done).
//
// The page's elements carry ids a script can check: `cycle` (the cycle shown), `pe-K-N` with
// data-w, data-x, data-m, data-p (empty when none), `out-N` with data-m and data-v, and
// `inst-PC` with data-state.
#include <string>

#include <nlohmann/json.hpp>

namespace tpu {

// The page for `data`, an explain_json() recording.
std::string explain_html(const nlohmann::json& data);

}  // namespace tpu

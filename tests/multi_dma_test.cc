// Several DMA engines per core (core.dma_engines): hand-derived cycles of engines overlapping
// transfers, the UB write port and the memory they share, and the limits on configs and
// programs. SystemC elaborates once per process: one simulate() per test.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>

#include "sim/config/config.h"
#include "sim/hbm_channel.h"
#include "sim/hbm_mux.h"
#include "sim/isa/program.h"
#include "sim/tpu_core.h"
#include "sim/weight_fifo.h"
#include "tests/assembly_run.h"
#include "tools/compiler/frontend.h"
#include "tools/compiler/lowering.h"

namespace tpu {
namespace {

// The 8 x 8 core of core_timing_test (ideal memory, 64 banks, two read ports, one write port,
// issue width 1, 256-byte bursts) with two DMA engines.
Config two_engines() {
  Config c = timing_core("test8x8dma2");
  c.core.dma_engines = 2;
  return c;
}

const UnitStats& dma_stats(const RunResult& r) { return r.units[std::size_t(Unit::kDma)]; }

// A load of UB rows 0..7 and a store of rows 16..23 (different banks), the store on engine
// `store_unit`.
std::string load_and_store(int store_unit) {
  return ".hbm 1024\n"
         "dma.load hbm=0 ub=0 elems=64 pack=8\n"
         "dma.store hbm=512 ub=16 elems=64 pack=8 unit=" +
         std::to_string(store_unit) + "\nhalt\n";
}

// Issue one a cycle: load 0, store 1, halt 2. The load (engine 0, start 0) sends its one
// 64-byte request in cycle 0, answered there (ideal); the response completes rows 0..7, one
// spread write burst through the one write port, cycles 0..7: done 8. The store (engine 1,
// issued and started 1) reads rows 16..23 in 1..8 (a spread read, second read port free);
// its one write request needs all of them, so it goes out in 8 + 1 = 9 and is answered
// there: done 9 + 1 = 10 = total (halt issued 2).
TEST(MultiDma, TwoEnginesOverlapALoadAndAStore) {
  const RunResult r = run_assembly(load_and_store(1), two_engines());
  EXPECT_EQ(at_pc(r, 0).start, 0u);
  EXPECT_EQ(at_pc(r, 0).done, 8u);
  EXPECT_EQ(at_pc(r, 1).instance, 1u);
  EXPECT_EQ(at_pc(r, 1).start, 1u);
  EXPECT_EQ(at_pc(r, 1).done, 10u);
  EXPECT_EQ(r.total_cycles, 10u);
  // The kind's counters sum the engines': busy 8 + 9 cycles, no stall.
  EXPECT_EQ(dma_stats(r).busy_cycles, 17u);
  EXPECT_EQ(dma_stats(r).instructions, 2u);
  EXPECT_TRUE(dma_stats(r).stalls.empty());
}

// The same transfers on one engine: the store starts when the load completes, 8 (ready
// max(issue 1, 8)), reads 8..15, writes in 16, done 17 = total.
TEST(MultiDma, OneEngineRunsTheSameTransfersOneAfterTheOther) {
  const RunResult r = run_assembly(load_and_store(0), two_engines());
  EXPECT_EQ(at_pc(r, 0).done, 8u);
  EXPECT_EQ(at_pc(r, 1).start, 8u);
  EXPECT_EQ(at_pc(r, 1).done, 17u);
  EXPECT_EQ(r.total_cycles, 17u);
}

// Two loads of 8 rows on two engines: A (engine 0, start 0) writes its rows in 0..7, granted
// at 0 + 1/2. B (engine 1, start 1) is answered in 1, but the one write port is A's until 8,
// so B writes 8..15: done 16, no faster than one engine (A done 8, B from 8, done 16). Two
// write ports: B writes 1..8, done 9.
std::string two_loads() {
  return ".hbm 1024\n"
         "dma.load hbm=0 ub=0 elems=64 pack=8\n"
         "dma.load hbm=512 ub=16 elems=64 pack=8 unit=1\n"
         "halt\n";
}

TEST(MultiDma, TwoLoadsShareTheOneUbWritePort) {
  const RunResult r = run_assembly(two_loads(), two_engines());
  EXPECT_EQ(at_pc(r, 0).done, 8u);
  EXPECT_EQ(at_pc(r, 1).start, 1u);
  EXPECT_EQ(at_pc(r, 1).done, 16u);
  EXPECT_EQ(r.total_cycles, 16u);
}

TEST(MultiDma, TwoLoadsWithTwoUbWritePortsOverlap) {
  Config c = two_engines();
  c.ub.write_ports = 2;
  const RunResult r = run_assembly(two_loads(), c);
  EXPECT_EQ(at_pc(r, 0).done, 8u);
  EXPECT_EQ(at_pc(r, 1).done, 9u);
  EXPECT_EQ(r.total_cycles, 9u);
}

// Three layers whose transfers run ahead on engine 1 (issue one a cycle, marks included).
// a: the load of TwoEnginesOverlapALoadAndAStore, issued and started 1, rows written 1..8,
// done 9. b: a one-row store on engine 1, issued and started 3, reads row 16 in 3, its
// request out and answered in 4, done 5. c: an 8-row store on engine 1, issued 5 (the engine
// free from 5), reads 24..31 in 5..12, request in 13, done 14 = total (halt issued 6).
// Active: a 1..8, b 3..4, c 5..13 (8 + 2 + 9 = 19 cycles of 14). Shares of the run: a from
// the start to its end, 0..8 (9); b ended under a: none, its 2 cycles overlap; c 9..13 (5),
// of its 9 active cycles 4 (5..8) under a: 9 + 0 + 5 = 14.
TEST(MultiDma, LayerCyclesPartitionTheRunWhenTransfersRunAhead) {
  const RunResult r = run_assembly(R"(
.hbm 1024
.layer 0 a conv2d 0
.layer 1 b conv2d 0
.layer 2 c conv2d 0
layer id=0
dma.load hbm=0 ub=0 elems=64 pack=8
layer id=1
dma.store hbm=512 ub=16 elems=8 pack=8 unit=1
layer id=2
dma.store hbm=640 ub=24 elems=64 pack=8 unit=1
halt
)",
                                   two_engines());
  EXPECT_EQ(at_pc(r, 1).start, 1u);
  EXPECT_EQ(at_pc(r, 1).done, 9u);
  EXPECT_EQ(at_pc(r, 3).start, 3u);
  EXPECT_EQ(at_pc(r, 3).done, 5u);
  EXPECT_EQ(at_pc(r, 5).start, 5u);
  EXPECT_EQ(at_pc(r, 5).done, 14u);
  EXPECT_EQ(r.total_cycles, 14u);
  ASSERT_EQ(r.layers.size(), 3u);
  const std::array<Cycle, 3> active = {8, 2, 9}, cycles = {9, 0, 5}, overlap = {0, 2, 4};
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(r.layers[i].active_cycles(), active[i]) << i;
    EXPECT_EQ(r.layers[i].cycles, cycles[i]) << i;
    EXPECT_EQ(r.layers[i].overlap_cycles, overlap[i]) << i;
  }
}

// `simple` memory, 1 ns cycles, 8 bytes per ns, 10 ns latency, 8-byte bursts, one request
// held at a time: the memory withholds END_REQ, and the shared port holds the other engine's
// request back. A: engine 0 loads rows 0..1 from 0 (two requests); B: engine 1 rows 8..9 from
// 64 (issued 1). A0 sent 0, accepted 0, bus 0..1, answered 11. B0 sent 1, held back; accepted
// when A0 is answered, 11: bus 11..12, answered 22. A1 sent 11 (after A0's response), held;
// accepted 22, answered 33: A writes its rows in 11 and 33, done 34. B1 sent 22, accepted 33,
// answered 44: B done 45. (One engine: A's requests answered 11 and 22, B's 33 and 44, done
// 46.) Then engine 0 stores rows 0..9 to 512 once B has signalled: the bytes land as loaded,
// rows 2..7 zero.
TEST(MultiDma, SimpleMemoryHoldsBackTheOtherEnginesRequest) {
  Config c = two_engines();
  c.clock_mhz = 1000.0;
  c.hbm.preset = "simple";
  c.hbm.bandwidth_gbs = 8.0;
  c.hbm.latency_ns = 10.0;
  c.hbm.burst_bytes = 8;
  c.hbm.max_outstanding = 1;
  Program p = parse_assembly(R"(.array 8 8
.hbm 1024
.sem 0 b_done
dma.load hbm=0 ub=0 elems=16 pack=8
dma.load hbm=64 ub=8 elems=16 pack=8 unit=1 signal=b_done
dma.store hbm=512 ub=0 elems=80 pack=8 wait=b_done
halt
)");
  HbmSegment a{"a", 0, {}}, b{"b", 64, {}};
  for (int i = 0; i < 16; ++i) {
    a.bytes.push_back(std::uint8_t(1 + i));
    b.bytes.push_back(std::uint8_t(101 + i));
  }
  p.hbm_image = {a, b};
  const RunResult r = run_traced(p, c);
  EXPECT_EQ(at_pc(r, 0).done, 34u);
  EXPECT_EQ(at_pc(r, 1).done, 45u);
  EXPECT_EQ(at_pc(r, 2).start, 45u);
  ASSERT_EQ(r.hbm_final.size(), 1024u);
  for (int i = 0; i < 80; ++i) {
    const int expected = i < 16 ? 1 + i : i >= 64 ? 101 + (i - 64) : 0;
    EXPECT_EQ(int(r.hbm_final[std::size_t(512 + i)]), expected) << i;
  }
}

// One DMA engine's side of the shared HBM port, reduced to one request: sent at `send_at`
// after `deltas` delta cycles (so engines can send in any delta of an instant, and any
// process order), recording when END_REQ and the response came (on the backward path, or
// on the forward call when it completes there).
struct PortClient : sc_core::sc_module {
  tlm_utils::simple_initiator_socket<PortClient> socket;
  PortClient(sc_core::sc_module_name name, sc_core::sc_time send_at, int deltas,
             std::uint64_t address)
      : sc_module(name), socket("socket"), send_at(send_at), deltas(deltas) {
    socket.register_nb_transport_bw(this, &PortClient::nb_transport_bw);
    trans.set_command(tlm::TLM_READ_COMMAND);
    trans.set_address(address);
    trans.set_data_ptr(data);
    trans.set_data_length(8);
    trans.set_streaming_width(8);
    trans.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
    SC_HAS_PROCESS(PortClient);
    SC_THREAD(run);
  }
  void run() {
    sc_core::wait(send_at);
    for (int i = 0; i < deltas; ++i) sc_core::wait(sc_core::SC_ZERO_TIME);
    tlm::tlm_phase phase = tlm::BEGIN_REQ;
    sc_core::sc_time delay = sc_core::SC_ZERO_TIME;
    status = socket->nb_transport_fw(trans, phase, delay);
    if (status == tlm::TLM_COMPLETED) answered = sc_core::sc_time_stamp() + delay;
  }
  tlm::tlm_sync_enum nb_transport_bw(tlm::tlm_generic_payload&, tlm::tlm_phase& phase,
                                     sc_core::sc_time& delay) {
    const sc_core::sc_time at = sc_core::sc_time_stamp() + delay;
    if (phase == tlm::END_REQ) {
      end_req = at;
      return tlm::TLM_ACCEPTED;
    }
    EXPECT_EQ(phase, tlm::BEGIN_RESP);
    answered = at;
    if (end_req == kNever) end_req = at;  // BEGIN_RESP ends the request phase too
    return tlm::TLM_COMPLETED;
  }
  static constexpr double kNeverNs = 1e9;
  const sc_core::sc_time kNever{kNeverNs, sc_core::SC_NS};
  tlm::tlm_generic_payload trans;
  unsigned char data[8] = {};
  sc_core::sc_time send_at;
  int deltas;
  std::optional<tlm::tlm_sync_enum> status;  // of the BEGIN_REQ call
  sc_core::sc_time end_req = kNever, answered = kNever;
};

// A `simple` HBM behind a shared port with three clients, created (so their threads
// registered) in `creation` order; client i sends at 5 ns after deltas[i] delta cycles.
struct PortRig : sc_core::sc_module {
  PortRig(sc_core::sc_module_name name, const Config& config, InstantEnd* instant_end,
          const std::array<int, 3>& creation, const std::array<int, 3>& deltas)
      : sc_module(name), hbm("hbm", config, nullptr), port("port", instant_end) {
    for (int i : creation) {
      clients[std::size_t(i)] = std::make_unique<PortClient>(
          ("client" + std::to_string(i)).c_str(), sc_core::sc_time(5, sc_core::SC_NS),
          deltas[std::size_t(i)], std::uint64_t(64 * i));
    }
    for (auto& c : clients) c->socket.bind(port.engines);  // client i is engine i
    port.memory.bind(hbm.socket);
  }
  HbmChannel hbm;
  HbmMux port;
  std::array<std::unique_ptr<PortClient>, 3> clients;
};

// Same-instant requests reach the memory in engine order, whatever the order SystemC runs
// the engines and whichever delta cycle they send in. `simple` memory, 8 bytes per ns, 10 ns
// latency, at most 2 held: engine 0 is accepted at 5, bus 5..6, answered 16; engine 1
// accepted at 5, bus 6..7, answered 17; engine 2 is held back (2 held) until engine 0's
// answer at 16, bus 16..17, answered 27. Rig `forward` creates the engines 0, 1, 2, all
// sending in the instant's first delta; rig `reverse` creates them 2, 1, 0 and engine 2 sends
// first, engine 0 two deltas later (today's main answers it last there). Both rigs share one
// InstantEnd, as a chip's cores do.
TEST(MultiDma, SameInstantRequestsGoInEngineOrderWhateverTheProcessOrder) {
  Config c = two_engines();
  c.hbm.preset = "simple";
  c.hbm.bandwidth_gbs = 8.0;
  c.hbm.latency_ns = 10.0;
  c.hbm.max_outstanding = 2;
  InstantEnd instant_end("instant_end");
  PortRig forward("forward", c, &instant_end, {0, 1, 2}, {0, 0, 0});
  PortRig reverse("reverse", c, &instant_end, {2, 1, 0}, {2, 1, 0});
  sc_core::sc_start();
  const double end_req[] = {5, 5, 16};
  const double answered[] = {16, 17, 27};
  for (const PortRig* rig : {&forward, &reverse}) {
    for (std::size_t i = 0; i < 3; ++i) {
      const PortClient& client = *rig->clients[i];
      EXPECT_EQ(client.status, tlm::TLM_ACCEPTED) << rig->name() << " engine " << i;
      EXPECT_EQ(client.end_req, sc_core::sc_time(end_req[i], sc_core::SC_NS))
          << rig->name() << " engine " << i;
      EXPECT_EQ(client.answered, sc_core::sc_time(answered[i], sc_core::SC_NS))
          << rig->name() << " engine " << i;
    }
    EXPECT_EQ(rig->hbm.stats().requests, 3u);
  }
}

// `ideal` memory answers every request on arrival whatever the order, so the chip's port
// passes requests straight on (no InstantEnd) and each engine gets its answer on its own
// forward call (TLM_COMPLETED) at 5 ns, the time the ordered port gives it at the end of the
// instant (END_REQ and BEGIN_RESP on the backward path, same instant). Both rigs run with the
// reverse process order of the test above.
TEST(MultiDma, OrderFreeMemoryAnswersOnTheForwardCall) {
  Config c = two_engines();
  ASSERT_EQ(c.hbm.preset, "ideal");
  InstantEnd instant_end("instant_end");
  PortRig ordered("ordered", c, &instant_end, {2, 1, 0}, {2, 1, 0});
  PortRig order_free("order_free", c, nullptr, {2, 1, 0}, {2, 1, 0});
  sc_core::sc_start();
  const sc_core::sc_time at(5, sc_core::SC_NS);
  for (std::size_t i = 0; i < 3; ++i) {
    const PortClient& o = *ordered.clients[i];
    EXPECT_EQ(o.status, tlm::TLM_ACCEPTED) << "engine " << i;
    EXPECT_EQ(o.end_req, at) << "engine " << i;
    EXPECT_EQ(o.answered, at) << "engine " << i;
    const PortClient& f = *order_free.clients[i];
    EXPECT_EQ(f.status, tlm::TLM_COMPLETED) << "engine " << i;
    EXPECT_EQ(f.end_req, f.kNever) << "engine " << i;  // nothing on the backward path
    EXPECT_EQ(f.answered, at) << "engine " << i;
    EXPECT_TRUE(f.trans.is_response_ok()) << "engine " << i;
  }
  EXPECT_EQ(ordered.hbm.stats().requests, 3u);
  EXPECT_EQ(order_free.hbm.stats().requests, 3u);
}

// A memory that holds back its first request (END_REQ at 1 ns, BEGIN_RESP at 2 ns) and
// answers every later one on the forward call's return path (TLM_UPDATED, BEGIN_RESP), so it
// waits for END_RESP, which it counts.
struct ReturnPathMemory : sc_core::sc_module {
  tlm_utils::simple_target_socket<ReturnPathMemory> socket;
  explicit ReturnPathMemory(sc_core::sc_module_name name) : sc_module(name), socket("socket") {
    socket.register_nb_transport_fw(this, &ReturnPathMemory::nb_transport_fw);
    SC_HAS_PROCESS(ReturnPathMemory);
    SC_THREAD(answer_first);
  }
  tlm::tlm_sync_enum nb_transport_fw(tlm::tlm_generic_payload& trans, tlm::tlm_phase& phase,
                                     sc_core::sc_time&) {
    if (phase == tlm::END_RESP) {
      ++end_resps;
      return tlm::TLM_COMPLETED;
    }
    trans.set_response_status(tlm::TLM_OK_RESPONSE);
    if (!first) {
      first = &trans;
      first_arrived.notify();
      return tlm::TLM_ACCEPTED;
    }
    phase = tlm::BEGIN_RESP;
    return tlm::TLM_UPDATED;
  }
  void answer_first() {
    sc_core::wait(first_arrived);
    sc_core::sc_time delay = sc_core::SC_ZERO_TIME;
    sc_core::wait(1, sc_core::SC_NS);
    tlm::tlm_phase phase = tlm::END_REQ;
    socket->nb_transport_bw(*first, phase, delay);
    sc_core::wait(1, sc_core::SC_NS);
    phase = tlm::BEGIN_RESP;
    first_status = socket->nb_transport_bw(*first, phase, delay);
  }
  tlm::tlm_generic_payload* first = nullptr;
  sc_core::sc_event first_arrived;
  int end_resps = 0;
  std::optional<tlm::tlm_sync_enum> first_status;  // of its BEGIN_RESP call
};

// Engine 1's request waits behind engine 0's, which the memory holds back until 1 ns; it is
// then answered on the return path, so the port passes BEGIN_RESP to engine 1 (ending its
// request phase too) and, engine 1 having completed it, END_RESP to the memory.
TEST(MultiDma, HeldBackRequestAnsweredOnTheReturnPathIsEndedAtTheMemory) {
  InstantEnd instant_end("instant_end");
  HbmMux port("port", &instant_end);
  ReturnPathMemory memory("memory");
  PortClient engine0("engine0", sc_core::SC_ZERO_TIME, 0, 0);
  PortClient engine1("engine1", sc_core::SC_ZERO_TIME, 0, 64);
  engine0.socket.bind(port.engines);
  engine1.socket.bind(port.engines);
  port.memory.bind(memory.socket);
  sc_core::sc_start();
  EXPECT_EQ(memory.first, &engine0.trans);
  EXPECT_EQ(engine0.end_req, sc_core::sc_time(1, sc_core::SC_NS));
  EXPECT_EQ(engine0.answered, sc_core::sc_time(2, sc_core::SC_NS));
  EXPECT_EQ(memory.first_status, tlm::TLM_COMPLETED);
  EXPECT_EQ(engine1.end_req, sc_core::sc_time(1, sc_core::SC_NS));
  EXPECT_EQ(engine1.answered, sc_core::sc_time(1, sc_core::SC_NS));
  EXPECT_EQ(memory.end_resps, 1);
}

// The same memory behind an order-free port: engine 0 sends first (engine 1 a delta later, so
// process order cannot swap them) and is held back; engine 1's request waits in the port
// (TLM_ACCEPTED) until engine 0's END_REQ at 1 ns, then goes on and is answered on the
// return path: the times of the test above, and the memory still gets its END_RESP.
TEST(MultiDma, OrderFreePortHoldsRequestsBehindOneTheMemoryHoldsBack) {
  HbmMux port("port", nullptr);
  ReturnPathMemory memory("memory");
  PortClient engine0("engine0", sc_core::SC_ZERO_TIME, 0, 0);
  PortClient engine1("engine1", sc_core::SC_ZERO_TIME, 1, 64);
  engine0.socket.bind(port.engines);
  engine1.socket.bind(port.engines);
  port.memory.bind(memory.socket);
  sc_core::sc_start();
  EXPECT_EQ(memory.first, &engine0.trans);
  EXPECT_EQ(engine0.status, tlm::TLM_ACCEPTED);
  EXPECT_EQ(engine0.end_req, sc_core::sc_time(1, sc_core::SC_NS));
  EXPECT_EQ(engine0.answered, sc_core::sc_time(2, sc_core::SC_NS));
  EXPECT_EQ(memory.first_status, tlm::TLM_COMPLETED);
  EXPECT_EQ(engine1.status, tlm::TLM_ACCEPTED);
  EXPECT_EQ(engine1.end_req, sc_core::sc_time(1, sc_core::SC_NS));
  EXPECT_EQ(engine1.answered, sc_core::sc_time(1, sc_core::SC_NS));
  EXPECT_EQ(memory.end_resps, 1);
}

// A transfer on engine 1 waiting for a semaphore nobody signals: the deadlock names dma.1.
TEST(MultiDma, DeadlockNamesTheEngine) {
  try {
    run_assembly(".hbm 64\n.sem 0 never\ndma.load hbm=0 ub=0 elems=8 pack=8 unit=1 wait=never\n"
                 "halt\n",
                 two_engines());
    FAIL() << "expected a deadlock";
  } catch (const SimError& e) {
    EXPECT_NE(std::string(e.what()).find("dma.1 at 'dma.load"), std::string::npos) << e.what();
  }
}

std::string program_error(const std::string& text, const Config& config) {
  try {
    run_assembly(text, config);
  } catch (const SimError& e) {
    return e.what();
  }
  return "no error";
}

TEST(MultiDma, EngineTheCoreLacksIsRejected) {
  EXPECT_EQ(program_error(".hbm 64\ndma.store hbm=0 ub=0 elems=8 pack=8 unit=2\nhalt\n",
                          two_engines()),
            "instruction 0 'dma.store hbm=0x0 ub=0 elems=8 pack=8 segs=1 seg_stride=0 groups=1 "
            "group_stride=0 ub_stride=1 unit=2': unit instance 2, but the core has 2 dma units "
            "(instances 0..1, core.dma_engines = 2)");
}

// A weight FIFO fills in order, which one engine's queue keeps and two engines' would not.
TEST(MultiDma, WeightFifoFilledFromTwoEnginesIsRejected) {
  Config c = two_engines();
  c.mxu.weight_fifo_tiles = 2;
  EXPECT_EQ(program_error(".hbm 128\n"
                          "dma.load hbm=0 ub=0 elems=64 pack=8 weights\n"
                          "dma.load hbm=64 ub=0 elems=64 pack=8 weights unit=1\n"
                          "halt\n",
                          c),
            "instruction 1 'dma.load hbm=0x40 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 "
            "group_stride=0 ub_stride=1 weights unit=1': weight FIFO 0 is filled by DMA engine "
            "0 before; every fill of a FIFO must be on one engine (unit=0)");
}

// With three or more engines the compiler puts MXU u's weight FIFO fills on engine
// 2 + u % (engines - 2), every fill of one FIFO on one engine, and the stores on engine 1; a
// GEMM reading a resident input has MXU 0's first load.weights wait (first_input) for engine
// 0's last transfer before it (or, reading it from HBM, for its input). With two engines the
// fills stay on engine 0.
// A weight FIFO's fill and read cycles are each taken once, in number order, and dropped, so
// a run of millions of weight tiles holds only the ones not yet taken; taking one out of order
// is a logic error, not a wrong cycle.
TEST(WeightFifo, CyclesAreTakenOnceInOrder) {
  CycleQueue q;
  EXPECT_FALSE(q.has(0));
  q.push(10);
  q.push(12);
  EXPECT_TRUE(q.has(1));
  EXPECT_FALSE(q.has(2));
  EXPECT_THROW(q.take(1), std::logic_error);
  EXPECT_EQ(q.take(0), 10u);
  EXPECT_TRUE(q.has(1));
  EXPECT_THROW(q.take(0), std::logic_error);
  EXPECT_EQ(q.take(1), 12u);
  EXPECT_THROW(q.take(2), std::logic_error);
  q.push(15);
  EXPECT_TRUE(q.has(2));
  EXPECT_EQ(q.take(2), 15u);
}

TEST(MultiDmaCompiler, WeightFillsRunOnEnginesOfTheirOwn) {
  Config c = timing_core("test8x8dma5");
  c.core.mxus = 4;
  c.core.dma_engines = 5;
  const Graph g = parse_model_json(
      R"({"name": "two", "batch": 16, "input": [1, 1, 64], "layers": [
          {"name": "a", "type": "dense", "units": 64}, {"name": "b", "type": "dense", "units": 64}]})",
      "two");
  CompileOptions options;
  options.timing_only = true;
  const Program p = compile(g, c, options);
  int fills = 0, stores = 0, first_waits = 0;
  for (const Instruction& inst : p.instructions) {
    if (inst.op == Opcode::kLoadWeights && (inst.wait & (1ull << kSemFirstInput))) ++first_waits;
    if (inst.op == Opcode::kDmaLoad && (inst.flags & kFlagWeights)) {
      EXPECT_EQ(inst.instance, 2 + inst.dma.fifo % 3);
      ++fills;
    } else if (inst.op == Opcode::kDmaStore) {
      EXPECT_EQ(inst.instance, 1);
      ++stores;
    } else if (inst.op == Opcode::kDmaLoad) {
      EXPECT_EQ(inst.instance, 0);
    }
  }
  // 64 x 64 weights on 8 x 8 tiles: 8 N tiles x 8 K tiles per layer.
  EXPECT_EQ(fills, 2 * 64);
  EXPECT_GT(stores, 0);
  // Node a's on its input load; node b reads a's resident output, and engine 0 has moved
  // nothing since that load (a's output stays on chip), so b's waits behind a's in MXU 0's order.
  EXPECT_EQ(first_waits, 1);
  // Padded convs: b's resident input gets its zero border from engine 0 after a's input load,
  // so b's first load.weights waits (first_input) for that transfer too.
  const Graph convs = parse_model_json(
      R"({"name": "convs", "input": [8, 8, 4], "layers": [
          {"name": "a", "type": "conv2d", "out_channels": 8, "kernel": 3, "padding": 1},
          {"name": "b", "type": "conv2d", "out_channels": 8, "kernel": 3, "padding": 1}]})",
      "convs");
  first_waits = 0;
  for (const Instruction& inst : compile(convs, c, options).instructions) {
    if (inst.op == Opcode::kLoadWeights && (inst.wait & (1ull << kSemFirstInput))) ++first_waits;
  }
  EXPECT_EQ(first_waits, 2);

  c.core.dma_engines = 2;
  for (const Instruction& inst : compile(g, c, options).instructions) {
    if (inst.op == Opcode::kDmaLoad) {
      EXPECT_EQ(inst.instance, 0);
    }
  }
}

TEST(MultiDmaConfig, EngineCountOutsideItsRangeIsOneLine) {
  EXPECT_EQ(config_error({{"core", {{"dma_engines", 0}}}}),
            "configs/x.json: core.dma_engines = 0 is out of range (allowed 1..16)");
  EXPECT_EQ(config_error({{"core", {{"dma_engines", 17}}}}),
            "configs/x.json: core.dma_engines = 17 is out of range (allowed 1..16)");
  EXPECT_EQ(config_error({{"core", {{"dma_engines", 16}}}}), "");
  EXPECT_EQ(parse_config(nlohmann::json::object(), "x").core.dma_engines, 3u);
}

}  // namespace
}  // namespace tpu

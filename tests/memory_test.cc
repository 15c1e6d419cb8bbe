// Memory side of the core: unified-buffer arbitration, the HBM channel's timing and protocol,
// and DMA transfers. Each test elaborates its own bench (one elaboration per process: run the
// binary through ctest or with --gtest_filter naming one test).
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>

#include "sim/clock.h"
#include "sim/dma_engine.h"
#include "sim/hbm_channel.h"
#include "sim/tpu_core.h"
#include "sim/unified_buffer.h"

namespace tpu {
namespace {

using sc_core::sc_time;
using sc_core::SC_NS;

// 8 x 8 array: UB rows of 8 int8 elements, 64 rows in 4 banks, one read and one write port.
// HBM bursts are one UB row (8 bytes). Clock 800 MHz: period 1.25 ns.
Config tiny_config(const std::string& preset) {
  Config c;
  c.name = "memory-test";
  c.clock_mhz = 800.0;
  c.array.rows = 8;
  c.array.cols = 8;
  c.ub.capacity_bytes = 64 * 8;
  c.ub.banks = 4;
  c.ub.read_ports = 1;
  c.ub.write_ports = 1;
  c.hbm.preset = preset;
  c.hbm.bandwidth_gbs = 8.0;  // 8 bytes per ns: one burst occupies the bus 1 ns
  c.hbm.latency_ns = 10.0;
  c.hbm.burst_bytes = 8;
  c.hbm.max_outstanding = 4;
  c.hbm.capacity_bytes = 4096;
  return c;
}

Program tiny_program(std::uint64_t hbm_bytes) {
  Program p;
  p.dtype = DataType::kInt8;
  p.array_rows = 8;
  p.array_cols = 8;
  p.hbm_bytes = hbm_bytes;
  HbmSegment seg;
  seg.name = "pattern";
  for (std::uint64_t i = 0; i < hbm_bytes; ++i) seg.bytes.push_back(std::uint8_t(i * 7 + 3));
  p.hbm_image.push_back(seg);
  return p;
}

Instruction dma(Opcode op, std::uint64_t hbm_addr, std::uint32_t ub_row, std::uint16_t elems,
                std::uint16_t pack = 8) {
  Instruction inst;
  inst.op = op;
  inst.dma.hbm_addr = hbm_addr;
  inst.dma.ub_row = ub_row;
  inst.dma.elems = elems;
  inst.dma.pack = pack;
  return inst;
}

// Waits until the start of cycle c.
void wait_cycle(const Clock& clock, Cycle c) { sc_core::wait(clock.until(c)); }

// A UB alone, driven by one scripted thread.
struct UbBench : sc_core::sc_module {
  UbBench(sc_core::sc_module_name name, const Config& c)
      : sc_module(name), config(c), clock(c.period_ns()), ub("ub", config, DataType::kInt8, probe) {
    SC_HAS_PROCESS(UbBench);
    SC_THREAD(run);
  }
  void run() { script(); }

  Config config;
  Clock clock;
  Probe probe{{}};
  UnifiedBuffer ub;
  std::function<void()> script;
};

// UB + HBM channel + DMA engine with their data, driven by one scripted thread.
struct DmaBench : sc_core::sc_module {
  // `hbm_storage` replaces the channel's view of HBM (default: the machine state's bytes).
  DmaBench(sc_core::sc_module_name name, const Config& c, const Program& program,
           bool functional = true, std::vector<std::uint8_t>* hbm_storage = nullptr,
           const Config* hbm_config = nullptr)
      : sc_module(name),
        config(c),
        clock(c.period_ns()),
        state(config, program, functional),
        ub("ub", config, DataType::kInt8, probe),
        hbm("hbm", hbm_config ? *hbm_config : config,
            hbm_storage ? hbm_storage : (functional ? &state.hbm : nullptr)),
        engine("dma", config, clock, ub, &state, probe) {
    engine.hbm_socket.bind(hbm.socket);
    SC_HAS_PROCESS(DmaBench);
    SC_THREAD(run);
  }
  void run() {
    try {
      script();
    } catch (const SimError& e) {
      error = e.what();
    }
  }
  DmaEngine::Result transfer_at(const Instruction& inst, Cycle start) {
    wait_cycle(clock, start);
    return engine.transfer(inst, start);
  }

  Config config;
  Clock clock;
  MachineState state;
  Probe probe{{}};
  UnifiedBuffer ub;
  HbmChannel hbm;
  DmaEngine engine;
  std::function<void()> script;
  std::string error;
};

UbRequest& make(std::vector<std::unique_ptr<UbRequest>>& reqs, UbClient client, bool write,
                std::uint64_t first_row, std::uint32_t count, Cycle earliest,
                std::uint64_t stride = 1) {
  reqs.push_back(std::make_unique<UbRequest>());
  UbRequest& r = *reqs.back();
  r.client = client;
  r.write = write;
  r.first_row = first_row;
  r.count = count;
  r.earliest = earliest;
  r.stride = stride;
  return r;
}


TEST(UnifiedBuffer, SameCycleRequestsGrantedInClientPriorityNotCallOrder) {
  UbBench b("bench", tiny_config("ideal"));
  std::vector<std::unique_ptr<UbRequest>> reqs;
  b.script = [&] {
    wait_cycle(b.clock, 2);
    // Called DMA first, then matmul; one read port. Matmul ranks first: rows 0..2 in cycles
    // 2..4, then the DMA's 2 reads in cycles 5..6.
    b.ub.request(make(reqs, UbClient::kDma, false, 8, 2, 0));
    b.ub.request(make(reqs, UbClient::kMatmul, false, 12, 3, 0));
    sc_core::wait(reqs[1]->done);
  };
  sc_core::sc_start();
  ASSERT_TRUE(reqs[0]->granted && reqs[1]->granted);
  EXPECT_EQ(reqs[1]->start, 2u);  // earliest 0 is in the past: no earlier than cycle 2
  EXPECT_EQ(reqs[0]->start, 2u + 3u);
  EXPECT_EQ(b.ub.reads(), 5u);
}

TEST(UnifiedBuffer, BankConflictDelaysByOneCycleAndOnlyThatBank) {
  UbBench b("bench", tiny_config("ideal"));
  std::vector<std::unique_ptr<UbRequest>> reqs;
  b.script = [&] {
    // Read of row 0 (bank 0) in cycle 0; a write of row 4 (bank 4 % 4 = 0) cannot use bank 0
    // in cycle 0 and starts at 1. The DMA's write of row 5 (bank 1) still gets cycle 0's write
    // port, ahead of the vector write granted before it: grants never move.
    b.ub.request(make(reqs, UbClient::kMatmul, false, 0, 1, 0));
    b.ub.request(make(reqs, UbClient::kVector, true, 4, 1, 0));
    b.ub.request(make(reqs, UbClient::kDma, true, 5, 1, 0));
    sc_core::wait(reqs[0]->done);
  };
  sc_core::sc_start();
  EXPECT_EQ(reqs[0]->start, 0u);
  EXPECT_EQ(reqs[1]->start, 1u);
  EXPECT_EQ(reqs[2]->start, 0u);
  EXPECT_EQ(b.ub.writes(), 2u);
}

// Spread accesses step around conflicts one access at a time; a contiguous burst cannot.
// tiny_config: 4 banks, one read and one write port. The MXU streams rows 0, 4, ..., 28
// (stride 4, all bank 0) in cycles 0..7. A spread DMA write of rows 1..8 (banks 1,2,3,0,...)
// from cycle 0: rows 1..3 take cycles 0..2; row 4 (bank 0) waits until bank 0 is free, cycle 8;
// rows 5..8 follow in 9..12: end 13. Eight more writes (rows 33..40) as one contiguous burst
// need eight consecutive cycles of the single write port: 3..7 is too short, so 13..20.
TEST(UnifiedBuffer, SpreadAccessesStepAroundConflictsContiguousBurstsWait) {
  UbBench b("bench", tiny_config("ideal"));
  std::vector<std::unique_ptr<UbRequest>> reqs;
  b.script = [&] {
    b.ub.request(make(reqs, UbClient::kMatmul, false, 0, 8, 0, 4));
    UbRequest& spread = make(reqs, UbClient::kDma, true, 1, 8, 0);
    spread.contiguous = false;
    spread.record_cycles = true;
    b.ub.request(spread);
    b.ub.request(make(reqs, UbClient::kDma, true, 33, 8, 0));
    sc_core::wait(reqs[0]->done);
  };
  sc_core::sc_start();
  EXPECT_EQ(reqs[0]->start, 0u);
  EXPECT_EQ(reqs[0]->end, 8u);
  EXPECT_EQ(reqs[1]->cycles, (std::vector<Cycle>{0, 1, 2, 8, 9, 10, 11, 12}));
  EXPECT_EQ(reqs[1]->start, 0u);
  EXPECT_EQ(reqs[1]->end, 13u);
  EXPECT_EQ(reqs[2]->start, 13u);
  EXPECT_EQ(reqs[2]->end, 21u);
}

TEST(UnifiedBuffer, PortLimitPerCycle) {
  Config c = tiny_config("ideal");
  c.ub.read_ports = 2;
  UbBench b("bench", c);
  std::vector<std::unique_ptr<UbRequest>> reqs;
  b.script = [&] {
    // Three single reads in distinct banks (rows 0, 1, 2), two read ports: two in cycle 0,
    // the third in cycle 1. A write in cycle 0 uses the separate write port (bank 3).
    b.ub.request(make(reqs, UbClient::kVector, false, 0, 1, 0));
    b.ub.request(make(reqs, UbClient::kVector, false, 1, 1, 0));
    b.ub.request(make(reqs, UbClient::kVector, false, 2, 1, 0));
    b.ub.request(make(reqs, UbClient::kDma, true, 3, 1, 0));
    sc_core::wait(reqs[0]->done);
  };
  sc_core::sc_start();
  EXPECT_EQ(reqs[0]->start, 0u);
  EXPECT_EQ(reqs[1]->start, 0u);
  EXPECT_EQ(reqs[2]->start, 1u);
  EXPECT_EQ(reqs[3]->start, 0u);
}

TEST(UnifiedBuffer, LongBurstBlocksLaterRequests) {
  UbBench b("bench", tiny_config("ideal"));
  std::vector<std::unique_ptr<UbRequest>> reqs;
  b.script = [&] {
    // Matmul reads rows 0..39 in cycles 0..39 (the only read port). A weight-load burst of 5
    // with earliest 10 must wait for the port: cycles 40..44. A request made later, in cycle
    // 20, queues behind both: 45..46.
    b.ub.request(make(reqs, UbClient::kMatmul, false, 0, 40, 0));
    b.ub.request(make(reqs, UbClient::kWeightLoad, false, 40, 5, 10));
    wait_cycle(b.clock, 20);
    b.ub.request(make(reqs, UbClient::kVector, false, 50, 2, 0));
    sc_core::wait(reqs[2]->done);
    EXPECT_EQ(sc_core::sc_time_stamp(), b.clock.at(20) + b.clock.period() / 2.0);
  };
  sc_core::sc_start();
  EXPECT_EQ(reqs[0]->start, 0u);
  EXPECT_EQ(reqs[1]->start, 40u);
  EXPECT_EQ(reqs[2]->start, 45u);
}

TEST(UnifiedBuffer, RequestAfterHalfCycleJoinsNextCycle) {
  UbBench b("bench", tiny_config("ideal"));
  std::vector<std::unique_ptr<UbRequest>> reqs;
  b.script = [&] {
    // Made at 3 + 3/4 (after cycle 3's arbitration at 3 + 1/2): arbitrated at 4 + 1/2, so
    // its start is no earlier than 4.
    sc_core::wait(b.clock.at(3) + b.clock.period() * 0.75);
    b.ub.request(make(reqs, UbClient::kMatmul, false, 0, 1, 0));
    sc_core::wait(reqs[0]->done);
    EXPECT_EQ(sc_core::sc_time_stamp(), b.clock.at(4) + b.clock.period() / 2.0);
  };
  sc_core::sc_start();
  EXPECT_EQ(reqs[0]->start, 4u);
}

TEST(UnifiedBuffer, HundredThousandCycleBurstsWithBankConflicts) {
  Config c = tiny_config("ideal");
  c.ub.read_ports = 2;
  UbBench b("bench", c);
  std::vector<std::unique_ptr<UbRequest>> reqs;
  b.script = [&] {
    // Row 0 read 100000 times (stride 0: bank 0 every cycle). The second burst reads row 4,
    // also bank 0: a free port every cycle but never a free bank until 100000. The third
    // (row 1, bank 1) shares the second read port from cycle 0.
    b.ub.request(make(reqs, UbClient::kMatmul, false, 0, 100000, 0, 0));
    b.ub.request(make(reqs, UbClient::kVector, false, 4, 100000, 0, 0));
    b.ub.request(make(reqs, UbClient::kDma, false, 1, 100000, 0, 0));
    sc_core::wait(reqs[0]->done);
  };
  sc_core::sc_start();
  EXPECT_EQ(reqs[0]->start, 0u);
  EXPECT_EQ(reqs[1]->start, 100000u);
  EXPECT_EQ(reqs[2]->start, 0u);
}

TEST(UnifiedBuffer, OutOfRangeRowsRaiseSimError) {
  UbBench b("bench", tiny_config("ideal"));
  std::vector<std::unique_ptr<UbRequest>> reqs;
  std::string error;
  b.script = [&] {
    try {
      b.ub.request(make(reqs, UbClient::kDma, true, 60, 5, 0));  // rows 60..64 of 64
    } catch (const SimError& e) {
      error = e.what();
    }
  };
  sc_core::sc_start();
  EXPECT_NE(error.find("64 rows"), std::string::npos) << error;
}


TEST(Dma, IdealLoadOfNOneRowBurstsTakesNCycles) {
  DmaBench b("bench", tiny_config("ideal"), tiny_program(256));
  DmaEngine::Result r;
  // 6 rows of 8 bytes from address 16: 6 bursts of one row each. Burst i is requested in
  // cycle 3 + i, answered in that cycle, written to the UB in that cycle (one write port, one
  // write per cycle): last write in 3 + 5, so done = 3 + 6.
  b.script = [&] { r = b.transfer_at(dma(Opcode::kDmaLoad, 16, 2, 48), 3); };
  sc_core::sc_start();
  EXPECT_EQ(b.error, "");
  EXPECT_EQ(r.done, 3u + 6u);
  EXPECT_EQ(r.hbm_read_bytes, 48u);
  EXPECT_EQ(r.ub_accesses, 6u);
  EXPECT_EQ(b.ub.writes(), 6u);
  EXPECT_EQ(b.hbm.stats().requests, 6u);
  EXPECT_EQ(b.hbm.stats().read_bytes, 48u);
}

// A `dma.load weights` fills a weight FIFO entry on the FIFO's own write port, one row per
// cycle, and touches no UB port or bank. 8 rows of 8 int8 from address 64 with 32-byte bursts:
// two requests, in cycles 3 and 4, answered there. Response 3 completes rows 0..3, written in
// 3..6; response 4 completes rows 4..7, written from max(4, 6 + 1) = 7: 7..10. Done = 10 + 1.
// (Into the UB, one spread write per row through its single write port, the same transfer
// also ends at 11, but holds that port 8 cycles.)
TEST(Dma, WeightFifoLoadWritesOneRowPerCycleOnItsOwnPort) {
  Config c = tiny_config("ideal");
  c.hbm.burst_bytes = 32;
  DmaBench b("bench", c, tiny_program(256));
  Instruction load = dma(Opcode::kDmaLoad, 64, 0, 64);
  load.flags = kFlagWeights;
  DmaEngine::Result r;
  b.script = [&] { r = b.transfer_at(load, 3); };
  sc_core::sc_start();
  EXPECT_EQ(b.error, "");
  EXPECT_EQ(r.done, 11u);
  EXPECT_EQ(r.hbm_read_bytes, 64u);
  EXPECT_EQ(r.ub_accesses, 0u);
  EXPECT_EQ(b.ub.writes(), 0u);
  EXPECT_EQ(b.hbm.stats().requests, 2u);
  ASSERT_EQ(b.state.weight_fifos[0].size(), 1u);
  const std::vector<std::uint8_t>& entry = b.state.weight_fifos[0].front();
  for (std::uint64_t i = 0; i < 64; ++i) {
    EXPECT_EQ(entry[i], std::uint8_t((64 + i) * 7 + 3)) << i;
  }
}

TEST(Dma, IdealStoreReadsThenWritesOneBurstPerCycle) {
  DmaBench b("bench", tiny_config("ideal"), tiny_program(256));
  DmaEngine::Result r;
  // 4 rows read as one burst in cycles 2..5 (row j in 2 + j); burst j needs only row j, so it
  // goes out in 2 + j + 1 and is answered there; the last response is seen in cycle 6, so
  // done = 6 + 1 = 2 + 4 + 1.
  b.script = [&] { r = b.transfer_at(dma(Opcode::kDmaStore, 64, 0, 32), 2); };
  sc_core::sc_start();
  EXPECT_EQ(b.error, "");
  EXPECT_EQ(r.done, 2u + 4u + 1u);
  EXPECT_EQ(r.hbm_write_bytes, 32u);
  EXPECT_EQ(r.ub_accesses, 4u);
  EXPECT_EQ(b.ub.reads(), 4u);
  EXPECT_EQ(b.hbm.stats().write_bytes, 32u);
}


TEST(Dma, SimpleLoadPaysLatencyOncePipelined) {
  DmaBench b("bench", tiny_config("simple"), tiny_program(256));
  DmaEngine::Result r;
  // k = 4 bursts of B = 8 bytes at 8 GB/s (1 ns of bus each), latency L = 10 ns, period
  // P = 1.25 ns, start s = 2, max_outstanding 4 >= k. Burst i goes out at (s + i) P; the bus
  // is free again 1 ns later, before the next arrival, so it is ready at (s + i) P + 1 + 10
  // and seen at cycle s + i + ceil(11 / 1.25) = s + i + 9, written to the UB in that cycle.
  // done = s + (k - 1) + 9 + 1 = 2 + 3 + 10 = 15.
  b.script = [&] { r = b.transfer_at(dma(Opcode::kDmaLoad, 0, 0, 32), 2); };
  sc_core::sc_start();
  EXPECT_EQ(b.error, "");
  EXPECT_EQ(r.done, 15u);
  EXPECT_EQ(b.hbm.stats().requests, 4u);
  EXPECT_DOUBLE_EQ(b.hbm.stats().max_latency_ns, 11.0);
  EXPECT_DOUBLE_EQ(b.hbm.stats().total_latency_ns, 44.0);
}

TEST(Dma, SimpleLoadBandwidthBound) {
  Config c = tiny_config("simple");
  c.hbm.bandwidth_gbs = 2.0;  // 8 bytes take 4 ns = 3.2 cycles on the bus
  DmaBench b("bench", c, tiny_program(256));
  DmaEngine::Result r;
  // Request i arrives at (s + i) P but the bus serves bursts back to back from s P:
  // ready_i = s P + 4 (i + 1) + 10. k = 5, s = 0: ready_4 = 30 ns, seen at ceil(30 / 1.25) =
  // 24, written in 24: done = 25 = ceil((k B / bw + L) / P) + 1.
  b.script = [&] { r = b.transfer_at(dma(Opcode::kDmaLoad, 0, 0, 40), 0); };
  sc_core::sc_start();
  EXPECT_EQ(b.error, "");
  EXPECT_EQ(r.done, 25u);
}

TEST(Dma, OutstandingLimitOfOneWaitsFullRoundTrip) {
  Config c = tiny_config("simple");
  c.hbm.max_outstanding = 1;
  DmaBench b("bench", c, tiny_program(256));
  DmaEngine::Result r;
  // One request in flight: burst i+1 goes out in the cycle burst i's response is seen.
  // Round trip T = ceil((B / bw + L) / P) = ceil(11 / 1.25) = 9 cycles. Burst i goes out at
  // s + 9 i (each sent on a cycle boundary, so every round trip rounds the same way), its
  // response is written at s + 9 (i + 1). k = 4, s = 1: done = 1 + 36 + 1 = 38.
  b.script = [&] { r = b.transfer_at(dma(Opcode::kDmaLoad, 0, 0, 32), 1); };
  sc_core::sc_start();
  EXPECT_EQ(b.error, "");
  EXPECT_EQ(r.done, 38u);
}

TEST(Dma, SimpleStoreCompletesCycleAfterLastResponse) {
  DmaBench b("bench", tiny_config("simple"), tiny_program(256));
  DmaEngine::Result r;
  // n = 3 rows read in cycles s .. s + 2 (s = 4); write j goes out at s + j + 1 (after its
  // row was read), ready 11 ns later, seen 9 cycles later: last seen at s + 3 + 9 = 16,
  // done = 17.
  b.script = [&] { r = b.transfer_at(dma(Opcode::kDmaStore, 128, 10, 24), 4); };
  sc_core::sc_start();
  EXPECT_EQ(b.error, "");
  EXPECT_EQ(r.done, 17u);
  EXPECT_EQ(b.hbm.stats().write_bytes, 24u);
}

TEST(Dma, RespectsChannelBackPressure) {
  // The DMA may have 4 requests in flight but the channel holds only 1: it withholds END_REQ
  // until the held request is answered, and the DMA sends nothing before END_REQ.
  Config channel_config = tiny_config("simple");
  channel_config.hbm.max_outstanding = 1;
  const Program program = tiny_program(256);
  DmaBench b("bench", tiny_config("simple"), program, true, nullptr, &channel_config);
  DmaEngine::Result r;
  // s = 0, P = 1.25 ns. Burst 0 at 0 ns, ready at 11. Burst 1 sent in cycle 1 is held,
  // accepted at 11 (END_REQ), ready at 22; END_REQ seen in cycle ceil(11/1.25) = 9, so burst
  // 2 goes out in cycle 9, is accepted at 22 and ready at 33; burst 3 (cycle ceil(22/1.25) =
  // 18) is ready at 44. Response i is seen in cycle ceil(11 (i + 1) / 1.25): 9, 18, 27, 36.
  // done = 36 + 1 = 37.
  b.script = [&] { r = b.transfer_at(dma(Opcode::kDmaLoad, 0, 0, 32), 0); };
  sc_core::sc_start();
  EXPECT_EQ(b.error, "");
  EXPECT_EQ(r.done, 37u);
  // Latency counts from BEGIN_REQ: 11, 22 - 1.25, 33 - 9 P, 44 - 18 P; the longest is
  // burst 2's, sent in cycle 9 (11.25 ns) and answered at 33.
  EXPECT_DOUBLE_EQ(b.hbm.stats().max_latency_ns, 33.0 - 9 * 1.25);
  EXPECT_DOUBLE_EQ(b.hbm.stats().total_latency_ns, 11.0 + 20.75 + 21.75 + 21.5);
}


// Sends requests back to back, waiting only for END_REQ, and records when each was
// accepted and answered.
struct HbmDriver : sc_core::sc_module {
  tlm_utils::simple_initiator_socket<HbmDriver> socket;
  HbmDriver(sc_core::sc_module_name name, const Config& c, std::vector<std::uint8_t>* storage)
      : sc_module(name), socket("socket"), hbm("hbm", c, storage), payloads(4) {
    socket.register_nb_transport_bw(this, &HbmDriver::nb_transport_bw);
    socket.bind(hbm.socket);
    SC_HAS_PROCESS(HbmDriver);
    SC_THREAD(run);
  }
  void run() {
    for (std::size_t i = 0; i < payloads.size(); ++i) {
      tlm::tlm_generic_payload& p = payloads[i].trans;
      p.set_command(tlm::TLM_READ_COMMAND);
      p.set_address(8 * i);
      p.set_data_ptr(payloads[i].data);
      p.set_data_length(8);
      p.set_streaming_width(8);
      tlm::tlm_phase phase = tlm::BEGIN_REQ;
      sc_time delay = sc_core::SC_ZERO_TIME;
      const tlm::tlm_sync_enum s = socket->nb_transport_fw(p, phase, delay);
      if (s == tlm::TLM_ACCEPTED) {
        sc_core::wait(end_req);
      } else {
        ASSERT_EQ(s, tlm::TLM_UPDATED);
        ASSERT_EQ(phase, tlm::END_REQ);
      }
      payloads[i].accepted = sc_core::sc_time_stamp();
    }
  }
  tlm::tlm_sync_enum nb_transport_bw(tlm::tlm_generic_payload& p, tlm::tlm_phase& phase,
                                     sc_time&) {
    for (Slot& s : payloads) {
      if (&s.trans != &p) continue;
      if (phase == tlm::END_REQ) {
        end_req.notify();
        return tlm::TLM_ACCEPTED;
      }
      s.answered = sc_core::sc_time_stamp();
      // End the first response later with END_RESP, the others on the backward call.
      if (&s == &payloads[0]) {
        end_resp_of_first.notify(2, SC_NS);
        return tlm::TLM_ACCEPTED;
      }
      return tlm::TLM_COMPLETED;
    }
    ADD_FAILURE() << "unknown payload";
    return tlm::TLM_COMPLETED;
  }
  void end_first_response() {
    tlm::tlm_phase phase = tlm::END_RESP;
    sc_time delay = sc_core::SC_ZERO_TIME;
    socket->nb_transport_fw(payloads[0].trans, phase, delay);
  }

  struct Slot {
    tlm::tlm_generic_payload trans;
    unsigned char data[8] = {};
    sc_time accepted, answered;
  };
  HbmChannel hbm;
  std::vector<Slot> payloads;
  sc_core::sc_event end_req, end_resp_of_first;
};

TEST(HbmChannel, SimpleWithholdsEndReqWhenFullAndKeepsResponsesExclusive) {
  Config c = tiny_config("simple");
  c.hbm.max_outstanding = 2;
  std::vector<std::uint8_t> storage(64);
  for (std::size_t i = 0; i < storage.size(); ++i) storage[i] = std::uint8_t(100 + i);
  HbmDriver d("driver", c, &storage);
  sc_core::sc_spawn_options opts;
  opts.spawn_method();
  opts.set_sensitivity(&d.end_resp_of_first);
  opts.dont_initialize();
  sc_core::sc_spawn([&] { d.end_first_response(); }, "end_resp", &opts);
  sc_core::sc_start();
  // Bus 1 ns per 8 bytes, latency 10 ns, at most 2 held. Requests 0 and 1 arrive at 0:
  // bus 0..1 -> ready 11, bus 1..2 -> ready 12. Request 2 (sent at 0) is held back until
  // request 0 is answered at 11: bus 11..12 -> ready 22. Request 3, sent at 11, waits for
  // request 1's answer at 12: bus 12..13 -> ready 23. Request 0's response stays open until
  // END_RESP at 13, so request 1's BEGIN_RESP waits until 13 as well.
  const double accepted[] = {0, 0, 11, 12};
  const double answered[] = {11, 13, 22, 23};
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(d.payloads[i].accepted, sc_time(accepted[i], SC_NS)) << i;
    EXPECT_EQ(d.payloads[i].answered, sc_time(answered[i], SC_NS)) << i;
    EXPECT_TRUE(d.payloads[i].trans.is_response_ok());
    EXPECT_EQ(d.payloads[i].data[0], 100 + 8 * i);
  }
  EXPECT_EQ(d.hbm.stats().requests, 4u);
  EXPECT_EQ(d.hbm.stats().read_bytes, 32u);
  // Latency from each BEGIN_REQ (0, 0, 0, 11) to its BEGIN_RESP.
  EXPECT_DOUBLE_EQ(d.hbm.stats().total_latency_ns, 11 + 13 + 22 + 12);
  EXPECT_DOUBLE_EQ(d.hbm.stats().max_latency_ns, 22);
}


TEST(Dma, LoadAndStoreMoveTheBytes) {
  // The channel has its own copy of HBM: the engine reads and writes HBM only through the
  // socket (its machine state's HBM is left alone), and the UB only at its grants.
  const Program program = tiny_program(512);
  std::vector<std::uint8_t> channel_hbm(512);
  for (const HbmSegment& s : program.hbm_image) {
    std::copy(s.bytes.begin(), s.bytes.end(), channel_hbm.begin() + std::ptrdiff_t(s.address));
  }
  DmaBench b("bench", tiny_config("simple"), program, true, &channel_hbm);
  // Gather 2 groups x 2 segments x 5 elements, 4 per row, 3 rows per group at stride 4:
  // segment s of group g at 100 + 64 g + 20 s. Then scatter the same rows to 300.
  Instruction load = dma(Opcode::kDmaLoad, 100, 8, 5, 4);
  load.dma.segs = 2;
  load.dma.seg_stride = 20;
  load.dma.groups = 2;
  load.dma.group_stride = 64;
  load.dma.ub_stride = 4;
  Instruction store = load;
  store.op = Opcode::kDmaStore;
  store.dma.hbm_addr = 300;
  b.script = [&] {
    const DmaEngine::Result l = b.transfer_at(load, 0);
    b.transfer_at(store, l.done);
  };
  sc_core::sc_start();
  ASSERT_EQ(b.error, "");
  for (std::uint32_t g = 0; g < 2; ++g) {
    for (std::uint32_t e = 0; e < 10; ++e) {
      const std::uint64_t src = 100 + 64 * g + 20 * (e / 5) + e % 5;
      const std::uint64_t dst = 300 + 64 * g + 20 * (e / 5) + e % 5;
      const std::uint8_t want = std::uint8_t(src * 7 + 3);
      EXPECT_EQ(b.state.ub_row(8 + 4 * g + e / 4)[e % 4], want) << g << " " << e;
      EXPECT_EQ(b.state.hbm[dst], std::uint8_t(dst * 7 + 3));  // the image, untouched
      EXPECT_EQ(channel_hbm[dst], want);
    }
  }
  EXPECT_EQ(b.hbm.stats().write_bytes, 20u);
}

TEST(Dma, TimingOnlyRunTakesTheSameCycles) {
  DmaBench b("bench", tiny_config("simple"), tiny_program(256), false);
  DmaEngine::Result r;
  // Same transfer and formula as SimpleLoadPaysLatencyOncePipelined: s + (k - 1) + 9 + 1.
  b.script = [&] { r = b.transfer_at(dma(Opcode::kDmaLoad, 0, 0, 32), 2); };
  sc_core::sc_start();
  EXPECT_EQ(b.error, "");
  EXPECT_EQ(r.done, 15u);
  EXPECT_TRUE(b.state.ub.empty());
}

TEST(Dma, AddressOutsideProgramRaisesSimError) {
  DmaBench b("bench", tiny_config("ideal"), tiny_program(64));
  b.script = [&] { b.transfer_at(dma(Opcode::kDmaLoad, 60, 0, 8), 0); };
  sc_core::sc_start();
  EXPECT_NE(b.error.find("outside HBM"), std::string::npos) << b.error;
}

TEST(Dma, HbmAddressErrorResponseRaisesSimError) {
  // The program's HBM is 256 bytes but the channel holds only 16: the second burst of a load
  // from address 8 falls outside it.
  std::vector<std::uint8_t> small(16);
  DmaBench b("bench", tiny_config("ideal"), tiny_program(256), true, &small);
  b.script = [&] { b.transfer_at(dma(Opcode::kDmaLoad, 8, 0, 16), 0); };
  sc_core::sc_start();
  EXPECT_NE(b.error.find("address 16"), std::string::npos) << b.error;
}

// Coalescing (tiny_config: 8-byte bursts, 8-byte rows, one write port, 4 banks, ideal memory).
TEST(Dma, OverlappingSegmentsInOneBurstAreOneRequest) {
  DmaBench b("bench", tiny_config("ideal"), tiny_program(256));
  DmaEngine::Result r;
  // 3 groups of 4 bytes at 16, 18, 20 (group_stride 2): all inside burst [16, 24), so one
  // request of their hull (8 bytes) in cycle s = 1, answered there. It completes rows 0, 1, 2
  // (one per group) at once: one spread write over 3 consecutive rows, cycles 1, 2, 3: done 4.
  Instruction load = dma(Opcode::kDmaLoad, 16, 0, 4, 4);
  load.dma.groups = 3;
  load.dma.group_stride = 2;
  b.script = [&] { r = b.transfer_at(load, 1); };
  sc_core::sc_start();
  EXPECT_EQ(b.error, "");
  EXPECT_EQ(r.done, 4u);
  EXPECT_EQ(b.hbm.stats().requests, 1u);
  EXPECT_EQ(r.hbm_read_bytes, 8u);
  EXPECT_EQ(b.ub.writes(), 3u);
  for (std::uint32_t g = 0; g < 3; ++g) {
    for (std::uint32_t e = 0; e < 8; ++e) {
      const std::uint8_t want = e < 4 ? std::uint8_t((16 + 2 * g + e) * 7 + 3) : 0;
      EXPECT_EQ(b.state.ub_row(g)[e], want) << g << " " << e;
    }
  }
}

TEST(Dma, SegmentsSpanningBurstsShareTheBurstsTheyTouch) {
  DmaBench b("bench", tiny_config("ideal"), tiny_program(256));
  DmaEngine::Result r;
  // 2 groups of 12 bytes at 4 and 8, 8 per row, 2 rows per group (rows 0-1, 2-3). Pieces in
  // gather order: [4, 8) [8, 16) of group 0, [8, 16) [16, 20) of group 1: 3 requests, in order
  // of first use, bursts 0, 1 (both groups), 2, sent in cycles s, s + 1, s + 2 (s = 0).
  // Cycle 0: row 0 still lacks its bytes 8..11. Cycle 1: burst 1 completes rows 0 and 1
  // (group 0) and row 2 (group 1's first 8 bytes): one spread write of rows 0..2, cycles 1..3.
  // Cycle 2: burst 2 completes row 3, whose write waits for the port: cycle 4. done = 5.
  Instruction load = dma(Opcode::kDmaLoad, 4, 0, 12, 8);
  load.dma.groups = 2;
  load.dma.group_stride = 4;
  load.dma.ub_stride = 2;
  b.script = [&] { r = b.transfer_at(load, 0); };
  sc_core::sc_start();
  EXPECT_EQ(b.error, "");
  EXPECT_EQ(r.done, 5u);
  EXPECT_EQ(b.hbm.stats().requests, 3u);
  EXPECT_EQ(r.hbm_read_bytes, 4u + 8u + 4u);
  EXPECT_EQ(r.ub_accesses, 4u);
  for (std::uint32_t g = 0; g < 2; ++g) {
    for (std::uint32_t e = 0; e < 16; ++e) {
      const std::uint8_t want = e < 12 ? std::uint8_t((4 + 4 * g + e) * 7 + 3) : 0;
      EXPECT_EQ(b.state.ub_row(2 * g + e / 8)[e % 8], want) << g << " " << e;
    }
  }
}

TEST(Dma, GatherRepeatingAnAddressFetchesItOnce) {
  DmaBench b("bench", tiny_config("simple"), tiny_program(256));
  DmaEngine::Result r;
  // 3 segments of the same 8 bytes at 32 (seg_stride 0), one row each: one request in cycle
  // s = 2, seen 9 cycles later (see SimpleLoadPaysLatencyOncePipelined) in cycle 11, where it
  // completes rows 0..2: written in 11, 12, 13, done 14.
  Instruction load = dma(Opcode::kDmaLoad, 32, 0, 8, 8);
  load.dma.segs = 3;
  b.script = [&] { r = b.transfer_at(load, 2); };
  sc_core::sc_start();
  EXPECT_EQ(b.error, "");
  EXPECT_EQ(r.done, 14u);
  EXPECT_EQ(b.hbm.stats().requests, 1u);
  EXPECT_EQ(b.hbm.stats().read_bytes, 8u);
  for (std::uint32_t row = 0; row < 3; ++row) {
    for (std::uint32_t e = 0; e < 8; ++e) {
      EXPECT_EQ(b.state.ub_row(row)[e], std::uint8_t((32 + e) * 7 + 3)) << row << " " << e;
    }
  }
}

TEST(Dma, StoreMergesBackToBackPiecesWithinABurstOnly) {
  Config c = tiny_config("ideal");
  c.hbm.burst_bytes = 16;
  DmaBench b("bench", c, tiny_program(256));
  DmaEngine::Result r;
  // 4 groups of 4 bytes from rows 0..3 to 72, 76, 80, 84 (back to back): pieces in the bursts
  // [64, 80) and [80, 96), merged into 2 writes of 8 bytes. Rows read in cycles 0..3 (one spread burst); write 0 needs row 1
  // (cycle 1), goes out in 2; write 1 needs row 3 (cycle 3), goes out in 4, answered there:
  // done 5.
  Instruction store = dma(Opcode::kDmaStore, 72, 0, 4, 4);
  store.dma.groups = 4;
  store.dma.group_stride = 4;
  b.script = [&] { r = b.transfer_at(store, 0); };
  sc_core::sc_start();
  EXPECT_EQ(b.error, "");
  EXPECT_EQ(r.done, 5u);
  EXPECT_EQ(b.hbm.stats().requests, 2u);
  EXPECT_EQ(r.hbm_write_bytes, 16u);
}

// The DMA over a DRAM preset: same engine, real row timing behind the socket.
TEST(DmaOnDram, LoadPaysActivateOnceThenStreamsColumnsOfTheOpenRow) {
  DmaBench b("bench", tiny_config("hbm2"), tiny_program(256));
  DmaEngine::Result r;
  // 32 bytes from address 0: four 8-byte requests at cycles 2..5 (2.5, 3.75, 5, 6.25 ns), all
  // inside DRAM burst 0 (channel 0, bank 0, row 0). They join the controller at DRAM edges
  // 3, 4, 5, 7 (tCK 1 ns). ACT at 3; RDs at 3 + tRCD 14 = 17, then every tCCD_L 4 (same bank
  // group): 21, 25, 29. The last data is done at 29 + CL 14 + burst 2 = 45 ns, seen at core
  // cycle ceil(45 / 1.25) = 36 and written to the UB there: done = 37.
  b.script = [&] { r = b.transfer_at(dma(Opcode::kDmaLoad, 0, 0, 32), 2); };
  sc_core::sc_start();
  EXPECT_EQ(b.error, "");
  EXPECT_EQ(r.done, 37u);
  EXPECT_EQ(r.hbm_read_bytes, 32u);
  const HbmStats& s = b.hbm.stats();
  EXPECT_EQ(s.requests, 4u);
  EXPECT_EQ(s.channels[0].row_misses, 1u);
  EXPECT_EQ(s.channels[0].row_hits, 3u);
  EXPECT_DOUBLE_EQ(s.max_latency_ns, 45.0 - 6.25);  // the last request: 6.25 ns to 45 ns
}

TEST(DmaOnDram, StoreWritesItsBytesThroughTheChannel) {
  const Program program = tiny_program(256);
  std::vector<std::uint8_t> storage(program.hbm_image[0].bytes);  // what the channel holds
  DmaBench b("bench", tiny_config("hbm2"), program, true, &storage);
  // Load 32 bytes from 0 into rows 0..3, then store them to 128: the channel's own storage
  // receives them (the write requests carry the data).
  b.script = [&] {
    const DmaEngine::Result load = b.transfer_at(dma(Opcode::kDmaLoad, 0, 0, 32), 0);
    b.transfer_at(dma(Opcode::kDmaStore, 128, 0, 32), load.done);
  };
  sc_core::sc_start();
  EXPECT_EQ(b.error, "");
  for (int i = 0; i < 32; ++i) EXPECT_EQ(storage[128 + i], std::uint8_t(i * 7 + 3)) << i;
  EXPECT_EQ(b.hbm.stats().write_bytes, 32u);
  EXPECT_EQ(b.hbm.stats().channels[4].write_bytes, 32u);  // 128 / 32-byte bursts: channel 4
}

}  // namespace
}  // namespace tpu

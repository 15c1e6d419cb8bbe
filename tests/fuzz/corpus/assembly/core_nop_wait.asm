# From tests/core_timing_test.cc: a NOP waits for a weight load's signal.
.array 8 8
.sem 1 done
load.weights ub=0 rows=8 cols=8 signal=done
nop wait=done
load.weights ub=8 rows=8 cols=8
halt

# tpusim program (canonical form)
.dtype int8
.array 8 8
.hbm 448
.sem 0 x_ready
.sem 1 x_free
.sem 2 w_ready
.sem 3 w_free
.sem 4 acc_ready
.sem 5 acc_free
.sem 6 out_ready
.sem 7 out_free
.sem 8 pool_ready
.sem 9 pool_free
.sem 10 layer_done
.sem 11 acc_ready_odd
.sem 12 staging_free
.sem 13 input_ready
.sem 14 border_ready
.sem 15 first_input
.layer 0 conv conv2d 3456
.layer 1 pool maxpool2d 0
layer id=0
  dma.load hbm=0x80 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  dma.load hbm=0xc0 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  dma.load hbm=0x100 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights
  dma.load hbm=0x0 ub=0 elems=9 pack=8 segs=3 seg_stride=18 groups=4 group_stride=3 ub_stride=4
  dma.load hbm=0x12 ub=16 elems=9 pack=8 segs=3 seg_stride=18 groups=4 group_stride=3 ub_stride=4
  dma.load hbm=0x24 ub=32 elems=9 pack=8 segs=3 seg_stride=18 groups=4 group_stride=3 ub_stride=4
  dma.load hbm=0x36 ub=48 elems=9 pack=8 segs=3 seg_stride=18 groups=4 group_stride=3 ub_stride=4 signal=x_ready,first_input
  load.weights ub=0 rows=8 cols=8 fifo wait=first_input
  matmul ub=0 stride=4 rows=16 acc=0 wait=x_ready
  dma.load hbm=0x140 ub=0 elems=24 pack=8 segs=1 seg_stride=0 groups=1 group_stride=0 ub_stride=1 weights signal=staging_free
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=1 stride=4 rows=16 acc=0 accumulate
  load.weights ub=0 rows=8 cols=8 fifo
  matmul ub=2 stride=4 rows=16 acc=0 accumulate
  load.weights ub=0 rows=3 cols=8 fifo
  matmul ub=3 stride=4 rows=16 acc=0 accumulate signal=acc_ready
  activate acc=0 rows=16 cols=8 ub=4096 func=relu multiplier=22107 shift=22 zero_point=0 wait=acc_ready signal=layer_done
layer id=1
  pool ub=4096 dst=0 in_h=4 in_w=4 kernel_h=2 kernel_w=2 stride=2 cols=8 multiplier=1 shift=0 wait=staging_free signal=out_ready
  dma.store hbm=0x180 ub=0 elems=16 pack=8 segs=1 seg_stride=0 groups=2 group_stride=16 ub_stride=2 wait=out_ready,layer_done
  halt

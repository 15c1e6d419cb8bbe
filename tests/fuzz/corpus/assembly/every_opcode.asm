; One of each opcode with optional fields and flag words spelled out.
.dtype int8
.array 8 8
.hbm 0x10000
.layer 0 l0 conv2d 1024
.sem 0 a
.sem 63 last
layer id=0
dma.load hbm=0x0 ub=0 elems=64 pack=8 segs=2 seg_stride=64 groups=1 group_stride=0 ub_stride=1 weights signal=a
load.weights ub=0 rows=8 cols=8 fifo wait=a
dma.load hbm=0x400 ub=16 elems=8 pack=8 segs=4 seg_stride=8 groups=2 group_stride=32 ub_stride=4
matmul ub=16 stride=1 rows=8 acc=0 accumulate unit=0
activate acc=0 rows=8 cols=8 ub=32 func=relu multiplier=-3 shift=7 zero_point=-5
pool ub=32 dst=40 in_h=2 in_w=4 kernel_h=2 kernel_w=2 stride=2 cols=8 average multiplier=2 shift=1
add ub_a=32 ub_b=40 dst=48 rows=2 cols=8 func=relu6 multiplier_a=1 multiplier_b=-1 shift=0 zero_point=3 signal=last
dma.store hbm=0x800 ub=48 elems=8 pack=8 wait=last
halt

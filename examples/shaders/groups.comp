#version 450
// The group counts of `kernels --indirect gpu`: one invocation writes
// ceil(n / per) x rows x 1 for the indirect dispatches after it (saxpy: n elements, 64 per
// group, one row; mandelbrot: the width, 16 per group, as many rows of groups), so that their
// counts are not known when the batch is submitted.
layout(local_size_x = 1) in;
layout(set = 0, binding = 0) writeonly buffer A { uint args[3]; };
layout(push_constant) uniform P { uint n; uint per; uint rows; } pc;
void main() {
    args[0] = (pc.n + pc.per - 1u) / pc.per;
    args[1] = pc.rows;
    args[2] = 1u;
}

#version 450
// The group counts of `kernels --kernel saxpy --indirect gpu`: one invocation writes
// ceil(n / 64) x 1 x 1 for the indirect dispatches after it, so that their counts are not
// known when the batch is submitted.
layout(local_size_x = 1) in;
layout(set = 0, binding = 0) writeonly buffer A { uint args[3]; };
layout(push_constant) uniform P { uint n; } pc;
void main() {
    args[0] = (pc.n + 63u) / 64u;
    args[1] = 1u;
    args[2] = 1u;
}

#version 450
// Trivial kernel of `bench-record`: one invocation adds its push constant to a counter.
// The sums are checked on the host, so every recorded command is known to have executed.

layout(local_size_x = 1, local_size_y = 1, local_size_z = 1) in;

layout(set = 0, binding = 0, std430) buffer Counter {
    uint sum;
    uint dispatches;
} counter;

layout(push_constant) uniform Push {
    uint value;
} pc;

void main() {
    atomicAdd(counter.sum, pc.value);
    atomicAdd(counter.dispatches, 1u);
}

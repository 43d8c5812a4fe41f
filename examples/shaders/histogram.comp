#version 450
// 256-bin histogram of the low bytes of n words with atomicAdd (`kernels --kernel
// histogram`): slices on several devices would not be atomic with each other, so vkfuse must
// not split it.
layout(local_size_x = 64) in;
layout(set = 0, binding = 0) readonly buffer V { uint v[]; };
layout(set = 0, binding = 1) buffer H { uint bins[]; };
layout(push_constant) uniform P { uint n; } pc;
void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i < pc.n) {
        atomicAdd(bins[v[i] & 255u], 1u);
    }
}

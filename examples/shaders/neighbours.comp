#version 450
// One step of `kernels --kernel chain`: out[i] = in[i] * 3 + in[(i + 1) % n] + step. Each
// step reads its neighbour's element of the previous step's output, which another slice
// wrote.
layout(local_size_x = 64) in;
layout(set = 0, binding = 0) readonly buffer I { uint src[]; };
layout(set = 0, binding = 1) writeonly buffer O { uint dst[]; };
layout(push_constant) uniform P { uint n; uint step; } pc;
void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i < pc.n) {
        dst[i] = src[i] * 3u + src[(i + 1u) % pc.n] + pc.step;
    }
}

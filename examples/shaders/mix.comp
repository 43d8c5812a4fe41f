#version 450
// One step of the `random-batches` example: every element of `dst` is mixed with an element of
// `src` chosen by a rotation, so each result depends on data another batch wrote.

layout(local_size_x = 64, local_size_y = 1, local_size_z = 1) in;

layout(set = 0, binding = 0, std430) readonly buffer Src {
    uint src[];
};

layout(set = 0, binding = 1, std430) buffer Dst {
    uint dst[];
};

layout(push_constant) uniform Push {
    uint seed;
    uint count;
    uint rotate;
} pc;

uint fmix32(uint h) {
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i >= pc.count) {
        return;
    }
    uint s = src[(i + pc.rotate) % pc.count];
    dst[i] = fmix32(dst[i] ^ s ^ (pc.seed + i * 0x9e3779b9u));
}

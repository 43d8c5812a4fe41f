#version 450
// Workload of the `compute` and `multiqueue` examples.
//
// Integer part: a bounded Collatz-like walk mixed with the murmur3 finaliser (wrapping u32
// arithmetic, exact everywhere). Float part: a saxpy whose operands are small dyadic rationals,
// so every product and sum is exactly representable and the result does not depend on rounding
// or on whether the compiler fuses a multiply-add. The CPU reference in src/lib.rs mirrors this.

layout(local_size_x = 64, local_size_y = 1, local_size_z = 1) in;

layout(set = 0, binding = 0, std140) uniform Params {
    uint seed;
    uint rounds;
    float scale;
    float half_step;
} params;

layout(set = 0, binding = 1, std430) buffer Ints {
    uint ints[];
};

layout(set = 0, binding = 2, std430) buffer Floats {
    float floats[];
};

layout(push_constant) uniform Push {
    uint offset; // first element of this dispatch
    uint count;  // elements in this dispatch
    uint pass;   // pass index, mixed into the seed
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
    uint local_index = gl_GlobalInvocationID.x;
    if (local_index >= pc.count) {
        return;
    }
    uint i = pc.offset + local_index;

    uint x = ints[i] ^ (params.seed + pc.pass * 0x9e3779b9u);
    uint steps = 0u;
    for (uint r = 0u; r < params.rounds; ++r) {
        if ((x & 1u) != 0u) {
            x = x * 3u + 1u;
        } else {
            x = x >> 1;
        }
        if (x <= 1u) {
            steps += 1u;
            x = fmix32(x + r + i);
        }
    }
    uint h = fmix32(x);
    ints[i] = h + steps;

    float y = float(h & 255u) * params.half_step;
    floats[i] = params.scale * floats[i] + y;
}

#version 450
// Workload of the `multithread` example: an order-dependent update, so the final contents
// depend on the exact order in which all dispatches ran.

layout(local_size_x = 64, local_size_y = 1, local_size_z = 1) in;

layout(set = 0, binding = 0, std430) buffer Acc {
    uint acc[];
};

layout(push_constant) uniform Push {
    uint seed;
    uint count;
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
    acc[i] = (acc[i] * 0x01000193u) ^ fmix32(pc.seed * 0x9e3779b9u + i);
}

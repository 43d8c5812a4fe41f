#version 450
// One frame of the `shared-inputs` example: every element of the frame's output mixes an entry
// of a table that every frame only reads (a uniform buffer) with the frame number.

layout(local_size_x = 64, local_size_y = 1, local_size_z = 1) in;

layout(set = 0, binding = 0, std140) uniform Table {
    uvec4 table[1024];
};

layout(set = 0, binding = 1, std430) buffer Out {
    uint out_[];
};

layout(push_constant) uniform Push {
    uint frame;
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
    uvec4 t = table[(i + pc.frame * 7u) % 1024u];
    out_[i] = fmix32(t.x ^ (t.y * 3u) ^ (t.z * 5u) ^ (t.w * 7u) ^ (pc.frame * 0x9e3779b9u));
}

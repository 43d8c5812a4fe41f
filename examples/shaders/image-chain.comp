#version 450
// One round of the `image-chain` example: level 0 of `dst` (both layers) from level 0 of `src`,
// each texel from its right-hand neighbour (wrapping), so texels move between rounds.
// Wrapping u32 arithmetic only: the same bits on every implementation.

layout(local_size_x = 8, local_size_y = 8, local_size_z = 1) in;

layout(set = 0, binding = 0, r32ui) uniform readonly uimage2DArray src;
layout(set = 0, binding = 1, r32ui) uniform writeonly uimage2DArray dst;

layout(push_constant) uniform Push {
    uint round_index;
    uint width;
    uint height;
} pc;

void main() {
    uvec3 id = gl_GlobalInvocationID;
    if (id.x >= pc.width || id.y >= pc.height) {
        return;
    }
    uint s = imageLoad(src, ivec3(int((id.x + 1u) % pc.width), int(id.y), int(id.z))).x;
    uint v = s * 2654435761u + pc.round_index * 0x9E3779B9u + (id.x ^ id.y);
    imageStore(dst, ivec3(id), uvec4(v, 0u, 0u, 0u));
}

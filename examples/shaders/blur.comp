#version 450
// A 3x3 box filter of an R32_UINT storage image into another (`kernels --kernel filter`): each
// invocation writes its own texel, reading its neighbours (clamped at the edges).
layout(local_size_x = 8, local_size_y = 8) in;
layout(set = 0, binding = 0, r32ui) readonly uniform uimage2D src;
layout(set = 0, binding = 1, r32ui) writeonly uniform uimage2D dst;
void main() {
    ivec2 size = imageSize(src);
    ivec2 p = ivec2(gl_GlobalInvocationID.xy);
    if (p.x >= size.x || p.y >= size.y) {
        return;
    }
    uint sum = 0u;
    for (int dy = -1; dy <= 1; dy++) {
        for (int dx = -1; dx <= 1; dx++) {
            sum += imageLoad(src, clamp(p + ivec2(dx, dy), ivec2(0), size - 1)).x;
        }
    }
    imageStore(dst, p, uvec4(sum / 9u));
}

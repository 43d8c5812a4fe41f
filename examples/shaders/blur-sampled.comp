#version 450
// `kernels --kernel filter --sampled`: the 3x3 box filter of blur.comp, its source read as a
// sampled image (texelFetch, SHADER_READ_ONLY_OPTIMAL) instead of a storage image.
layout(local_size_x = 8, local_size_y = 8) in;
layout(set = 0, binding = 0) uniform usampler2D src;
layout(set = 0, binding = 1, r32ui) writeonly uniform uimage2D dst;
void main() {
    ivec2 size = textureSize(src, 0);
    ivec2 p = ivec2(gl_GlobalInvocationID.xy);
    if (p.x >= size.x || p.y >= size.y) {
        return;
    }
    uint sum = 0u;
    for (int dy = -1; dy <= 1; dy++) {
        for (int dx = -1; dx <= 1; dx++) {
            sum += texelFetch(src, clamp(p + ivec2(dx, dy), ivec2(0), size - 1), 0).x;
        }
    }
    imageStore(dst, p, uvec4(sum / 9u));
}

#version 450
// `offscreen --storage`: `offscreen.frag`, with each colour also XORed with a mask read from a
// read-only storage buffer (all zero: the image is the same bytes as without it).

layout(set = 0, binding = 0) uniform usampler2D tex;
layout(set = 0, binding = 1) readonly buffer Masks { uvec4 mask[]; };

layout(location = 0) in vec2 v_uv;
layout(location = 1) flat in uvec4 v_color;
layout(location = 2) flat in uint v_textured;

layout(location = 0) out uvec4 out_color;

void main() {
    uvec4 c = v_color ^ mask[v_textured];
    if (v_textured != 0u) {
        c ^= texture(tex, v_uv);
    }
    out_color = c;
}

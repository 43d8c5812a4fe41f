#version 450
// `offscreen`: integer colours only (R8G8B8A8_UINT texture and target), nearest sampling, so
// the output bytes are exact on every conformant implementation.

layout(set = 0, binding = 0) uniform usampler2D tex;

layout(location = 0) in vec2 v_uv;
layout(location = 1) flat in uvec4 v_color;
layout(location = 2) flat in uint v_textured;

layout(location = 0) out uvec4 out_color;

void main() {
    uvec4 c = v_color;
    if (v_textured != 0u) {
        c ^= texture(tex, v_uv);
    }
    out_color = c;
}

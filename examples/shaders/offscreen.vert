#version 450
// `offscreen`: pass-through vertex shader. Positions are exact multiples of 1/128 in NDC, so
// every quad edge lies on a pixel edge of the 256x256 target.

layout(location = 0) in vec3 in_position; // x, y in NDC, z = depth
layout(location = 1) in vec2 in_uv;
layout(location = 2) in uvec4 in_color;   // R8G8B8A8_UINT
layout(location = 3) in uint in_textured; // R32_UINT, 0 or 1

layout(location = 0) out vec2 v_uv;
layout(location = 1) flat out uvec4 v_color;
layout(location = 2) flat out uint v_textured;

void main() {
    gl_Position = vec4(in_position, 1.0);
    v_uv = in_uv;
    v_color = in_color;
    v_textured = in_textured;
}

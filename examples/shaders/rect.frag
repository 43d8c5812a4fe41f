#version 450
// `bench-frame`: flat colour from push constants.

layout(push_constant) uniform Push {
    vec4 rect;
    vec4 color;
} pc;

layout(location = 0) out vec4 out_color;

void main() {
    out_color = pc.color;
}

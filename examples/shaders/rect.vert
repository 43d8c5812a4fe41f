#version 450
// `bench-frame`: a rectangle from push constants, drawn as a 4-vertex triangle strip.

layout(push_constant) uniform Push {
    vec4 rect;  // x0, y0, x1, y1 in NDC
    vec4 color;
} pc;

void main() {
    float x = (gl_VertexIndex & 1) != 0 ? pc.rect.z : pc.rect.x;
    float y = (gl_VertexIndex & 2) != 0 ? pc.rect.w : pc.rect.y;
    gl_Position = vec4(x, y, 0.0, 1.0);
}

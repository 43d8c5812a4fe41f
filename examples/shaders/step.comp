#version 450
// One element-wise step of `kernels --kernel mix`: d[i] = d[i] * 3 + s[i] + step for i < n.
// Every invocation reads and writes only its own element of both bindings.
layout(local_size_x = 64) in;
layout(set = 0, binding = 0) readonly buffer S { uint s[]; };
layout(set = 0, binding = 1) buffer D { uint d[]; };
layout(push_constant) uniform P { uint n; uint step; } pc;
void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i < pc.n) {
        d[i] = d[i] * 3u + s[i] + pc.step;
    }
}

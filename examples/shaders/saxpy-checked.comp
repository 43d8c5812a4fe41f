#version 450
// saxpy whose invocations also check that their workgroup lies inside the grid, which it
// always does (`kernels --kernel saxpy --checked`). It reads gl_NumWorkGroups.x: a slice
// that launched only its own workgroups would see its own count there and skip most of them,
// so vkfuse must launch the whole grid for its sliced indirect dispatches (not narrow them).
layout(local_size_x = 64) in;
layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) buffer Y { float y[]; };
layout(push_constant) uniform P { float a; uint n; } pc;
void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i < pc.n && gl_WorkGroupID.x < gl_NumWorkGroups.x) {
        y[i] = pc.a * x[i] + y[i];
    }
}

#version 450
// Stream compaction (`kernels --kernel compact`): every word divisible by 3 is appended to
// the output at a slot handed out by atomicAdd on a counter. Slices run on several members
// would hand out the same slots: vkfuse must not split it (the add's result is used).
layout(local_size_x = 64) in;
layout(set = 0, binding = 0) readonly buffer V { uint v[]; };
layout(set = 0, binding = 1) buffer C { uint count; };
layout(set = 0, binding = 2) writeonly buffer O { uint o[]; };
layout(push_constant) uniform P { uint n; } pc;
void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i < pc.n && v[i] % 3u == 0u) {
        o[atomicAdd(count, 1u)] = v[i];
    }
}

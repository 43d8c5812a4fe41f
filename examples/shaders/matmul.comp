#version 450
// C = A * B for n x n matrices of 32-bit integers (wrapping), tiled through shared memory
// (`kernels --kernel matmul`); n is a multiple of 16.
layout(local_size_x = 16, local_size_y = 16) in;
layout(set = 0, binding = 0) readonly buffer A { uint a[]; };
layout(set = 0, binding = 1) readonly buffer B { uint b[]; };
layout(set = 0, binding = 2) writeonly buffer C { uint c[]; };
layout(push_constant) uniform P { uint n; } pc;
shared uint ta[16][16];
shared uint tb[16][16];
void main() {
    uint row = gl_GlobalInvocationID.y;
    uint col = gl_GlobalInvocationID.x;
    uint lx = gl_LocalInvocationID.x;
    uint ly = gl_LocalInvocationID.y;
    uint sum = 0u;
    for (uint t = 0u; t < pc.n; t += 16u) {
        ta[ly][lx] = a[row * pc.n + t + lx];
        tb[ly][lx] = b[(t + ly) * pc.n + col];
        barrier();
        for (uint k = 0u; k < 16u; k++) {
            sum += ta[ly][k] * tb[k][lx];
        }
        barrier();
    }
    c[row * pc.n + col] = sum;
}

#version 450
// Escape iteration counts of a width x height grid over [-2, 1] x [-1.5, 1.5]
// (`kernels --kernel mandelbrot`), one invocation per point, rows of `width` words. Fixed
// point (12 fraction bits) in 32-bit integers: the same counts on every conformant driver.
layout(local_size_x = 16, local_size_y = 16) in;
layout(set = 0, binding = 0) writeonly buffer O { uint iterations[]; };
layout(push_constant) uniform P { uint width; uint height; uint limit; } pc;
const int ONE = 4096;
void main() {
    uvec2 p = gl_GlobalInvocationID.xy;
    if (p.x >= pc.width || p.y >= pc.height) {
        return;
    }
    int cx = -2 * ONE + int(p.x) * 3 * ONE / int(pc.width);
    int cy = -3 * ONE / 2 + int(p.y) * 3 * ONE / int(pc.height);
    int zx = 0;
    int zy = 0;
    uint k = 0u;
    while (k < pc.limit && zx * zx / ONE + zy * zy / ONE <= 4 * ONE) {
        int t = zx * zx / ONE - zy * zy / ONE + cx;
        zy = 2 * zx * zy / ONE + cy;
        zx = t;
        k++;
    }
    iterations[p.y * pc.width + p.x] = k;
}

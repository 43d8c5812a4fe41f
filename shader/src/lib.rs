//! What a compute shader does with the resources bound to it, read from its SPIR-V (issue 4:
//! splitting a dispatch across members). Pure logic: the ICD hands it a module's words and an
//! entry point name and caches the answer per pipeline; nothing here calls Vulkan.
//!
//! Per descriptor binding (set, binding) the entry point's module names: whether it is read,
//! written, and with which atomics; and whether its writes are indexed by the global
//! invocation id so that the invocations of different slices of a dispatch along one
//! dimension write disjoint elements:
//!
//! - a buffer element `data[gid.c * S + K]` (the first index into the binding that is not a
//!   constant; `S >= 1` a constant stride, every write's `K` a constant in `0..S`, one
//!   component `c` for all writes);
//! - an image texel at coordinates made of distinct global invocation id components
//!   (`imageStore(img, ivec2(gl_GlobalInvocationID.xy), ..)`).
//!
//! Anything the analysis does not follow counts against the shader: a resource pointer passed
//! to a function or used by an instruction it does not know makes the binding *opaque* (read,
//! written, any atomics); physical storage buffer pointers (buffer device addresses) reach
//! memory no binding names (`addresses`). The analysis walks every function of the module,
//! so a module with several entry points is judged by all of them.

pub mod slice;
pub mod spirv;

use std::collections::{BTreeMap, HashMap};

use spirv::{decoration, op, storage, Inst};

/// The atomics a shader applies to a binding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Atomics {
    #[default]
    None,
    /// 32-bit integer add, subtract, increment and decrement only, their results unused, and
    /// no other access to the binding: the deltas of several members' copies sum exactly
    /// (a histogram's bins).
    Add,
    /// Any other read-modify-write (exchange, compare-exchange, min, max, bitwise, float).
    Other,
}

/// What a shader does with one descriptor binding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Binding {
    pub read: bool,
    pub written: bool,
    pub atomics: Atomics,
    /// Global invocation id components (bit `c` for component `c`) along which slices of a
    /// dispatch write disjoint parts of the binding; 0 when it is not written, or not proven.
    pub disjoint_along: u8,
    /// Used in a way the analysis does not follow: read, written, any atomics assumed.
    pub opaque: bool,
    /// Every access to the binding (a buffer) stays inside its invocation's own bytes, read
    /// and written alike: where it is proven, slices of a dispatch cut along `own.comp`
    /// touch disjoint bytes of it, which consecutive dispatches cut the same way touch
    /// again, and which merge exactly.
    pub own: Option<Own>,
}

/// The bytes of a buffer binding its invocations access: invocation `g` (component `comp`
/// of its global invocation id) only bytes `offset + g * bytes .. offset + (g + 1) * bytes`
/// from the start of the descriptor's range (`data[gid.c * S + K]` with constants `S >= 1`
/// and `K` in `0..S`, through one member of the block; `bytes` is `S` times the array
/// stride), moved by `U * stride` bytes where the index adds a push constant `U`
/// (`data[gid.c * S + K + U]`, `S <= 16`: a 32-bit integer member of the push constant
/// block at byte `push`).
///
/// Rows (`rows: Some((col, at))`): `data[gid.comp * W + gid.col]`, with `W` the 32-bit
/// integer push constant at byte `at` (a row width, as in `out[y * width + x]`), through one
/// member of the block: where every invocation's `gid.col` is below `W` (the dispatch's grid
/// along `col` is at most `W` wide), invocation `g` along `comp` accesses only the row of
/// bytes `offset + g * W * bytes .. offset + (g + 1) * W * bytes` (`bytes` is the array
/// stride then, `push` none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Own {
    pub comp: u8,
    pub offset: u64,
    pub bytes: u64,
    pub push: Option<u32>,
    pub stride: u64,
    pub rows: Option<(u8, u32)>,
}

/// What a compute entry point does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Analysis {
    /// `LocalSize` (None where the size comes from a `WorkgroupSize` constant, which
    /// specialization may change, or from `LocalSizeId`).
    pub local_size: Option<[u32; 3]>,
    /// Per (set, binding).
    pub bindings: BTreeMap<(u32, u32), Binding>,
    /// The module uses physical storage buffer pointers: memory no binding names.
    pub addresses: bool,
    /// The components of `NumWorkgroups` (`gl_NumWorkGroups`) the module reads, bit `c` for
    /// component `c` (all three where the vector is used whole): a slice of a dispatch run
    /// with `vkCmdDispatchBase` sees its own group count along the dimension it is cut, so a
    /// dispatch is not cut along a dimension whose count the shader reads.
    pub num_workgroups: u8,
}

impl Analysis {
    /// What the stages of one graphics pipeline do together ([`analyse_stage`] of each): per
    /// binding, read, written or opaque where any stage is, and the strongest atomics.
    pub fn union_of<'a>(stages: impl IntoIterator<Item = &'a Analysis>) -> Analysis {
        let mut out = Analysis::default();
        for a in stages {
            out.addresses |= a.addresses;
            for (key, b) in &a.bindings {
                let o = out.bindings.entry(*key).or_default();
                o.read |= b.read;
                o.written |= b.written;
                o.opaque |= b.opaque;
                o.atomics = o.atomics.max(b.atomics);
            }
        }
        out
    }

    /// Whether the shader writes only through bindings, each written with writes proven
    /// disjoint along global invocation id component `c`, and with no atomics.
    pub fn splits_along(&self, c: u8) -> bool {
        !self.addresses
            && self.bindings.values().all(|b| {
                !b.written
                    || (!b.opaque && b.atomics == Atomics::None && b.disjoint_along & (1 << c) != 0)
            })
    }

    /// Whether slices cut along dimension `c` see the group counts the shader reads
    /// (`gl_NumWorkGroups`): they do unless it reads component `c`.
    pub fn cuts_along(&self, c: usize) -> bool {
        c < 3 && self.num_workgroups & (1 << c) == 0
    }

    /// Why slices of a dispatch of this shader, run at once on several members, could give
    /// another result than the whole dispatch; `None` when they give the same result for
    /// every dispatch without data races, merged by diff, and the sum of the members' deltas
    /// for bindings with `Atomics::Add` (which needs each member its own copy: see
    /// [`Analysis::adds`]).
    ///
    /// Other atomics of slices on different devices are not atomic with each other (host
    /// memory seen by two devices gives no such promise), opaque bindings may be used
    /// atomically, addresses reach memory no binding names, and `NumWorkgroups` read whole
    /// differs per slice.
    pub fn split_refusal(&self) -> Option<&'static str> {
        self.slice_refusal()
            .or_else(|| (self.num_workgroups == 0b111).then_some("it reads gl_NumWorkGroups"))
    }

    /// Why slices of a dispatch of this shader that each run the whole grid, their
    /// workgroups outside the slice returning at once ([`slice::workgroup_slice`]), could
    /// give another result than the whole dispatch: as [`Analysis::split_refusal`], but
    /// reading `gl_NumWorkGroups` is no reason (every slice sees the whole grid's counts).
    pub fn slice_refusal(&self) -> Option<&'static str> {
        if self.addresses {
            return Some("it uses buffer device addresses");
        }
        if self.bindings.values().any(|b| b.opaque) {
            return Some("it uses a binding in a way the analysis does not follow");
        }
        if self.bindings.values().any(|b| b.atomics == Atomics::Other) {
            return Some("it uses atomics other than adds whose results it does not use");
        }
        None
    }

    /// Whether some binding takes only add atomics (`Atomics::Add`): slices merge exactly
    /// only where each member adds into its own copy.
    pub fn adds(&self) -> bool {
        self.bindings.values().any(|b| b.atomics == Atomics::Add)
    }
}

/// Why a module could not be analysed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    Parse(spirv::ParseError),
    /// No `GLCompute` entry point of this name.
    NoEntryPoint(String),
    /// The module is one [`slice::workgroup_slice`] does not rewrite, for this reason.
    Rewrite(&'static str),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Parse(e) => e.fmt(f),
            Error::NoEntryPoint(n) => write!(f, "no compute entry point \"{n}\""),
            Error::Rewrite(why) => write!(f, "not rewritten: {why}"),
        }
    }
}

impl std::error::Error for Error {}

/// A value the same for every invocation of a dispatch: a push constant (variable and
/// constant access chain).
type Uniform = (u32, Vec<i64>);

/// An integer value as the analysis knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Value {
    Const(i64),
    /// `gid[comp] * scale + offset (+ uniform)`.
    Affine {
        comp: u8,
        scale: i64,
        offset: i64,
        uniform: Option<Uniform>,
    },
    Uniform(Uniform),
    /// The global invocation id vector, or some of its components in this order.
    Gid(Vec<u8>),
    /// `gid[comp] * by`, `by` a push constant.
    Scaled {
        comp: u8,
        by: Uniform,
    },
    /// `gid[row] * width + gid[col]` (`row != col`), `width` a push constant.
    Rows {
        row: u8,
        col: u8,
        width: Uniform,
    },
}

impl Value {
    /// Component `comp` of the global invocation id.
    fn gid(comp: u8) -> Value {
        Value::Affine {
            comp,
            scale: 1,
            offset: 0,
            uniform: None,
        }
    }

    /// The component, when the value is exactly one component of the global invocation id.
    fn as_gid(&self) -> Option<u8> {
        match self {
            Value::Affine {
                comp,
                scale: 1,
                offset: 0,
                uniform: None,
            } => Some(*comp),
            _ => None,
        }
    }
}

/// How every access of a buffer variable indexes it (`Walk::own`), through block member
/// `member`.
#[derive(Clone, Debug, PartialEq)]
enum OwnPattern {
    /// `data[gid.comp * scale + K (+ uniform)]`: member, component, scale, the push constant
    /// added.
    Linear(i64, u8, i64, Option<Uniform>),
    /// `data[gid.row * width + gid.col]`: member, row and column components, the width.
    Rows(i64, u8, u8, Uniform),
}

/// A pointer into a resource: its variable and the access chain's index ids.
#[derive(Clone, Debug)]
struct Ptr {
    var: u32,
    chain: Vec<u32>,
}

/// One write into a buffer binding: the index that proves it disjoint, if one does.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Indexed {
    /// The constant indices before the first dynamic one.
    prefix: Vec<i64>,
    comp: u8,
    scale: i64,
    uniform: Option<Uniform>,
}

/// The names of the compute (`GLCompute`) entry points of the SPIR-V module `words` (none for
/// words that are not a module).
pub fn compute_entry_points(words: &[u32]) -> Vec<String> {
    spirv::instructions(words)
        .map(|insts| {
            insts
                .iter()
                .filter(|i| i.op == op::ENTRY_POINT && i.at(0) == spirv::GL_COMPUTE)
                .map(|i| i.string(2))
                .collect()
        })
        .unwrap_or_default()
}

/// The entry points of the SPIR-V module `words` other than compute ones: (execution model,
/// name) each (none for words that are not a module).
pub fn stage_entry_points(words: &[u32]) -> Vec<(u32, String)> {
    spirv::instructions(words)
        .map(|insts| {
            insts
                .iter()
                .filter(|i| i.op == op::ENTRY_POINT && i.at(0) != spirv::GL_COMPUTE)
                .map(|i| (i.at(0), i.string(2)))
                .collect()
        })
        .unwrap_or_default()
}

/// Analyses entry point `entry` of the SPIR-V module `words` (a compute shader).
pub fn analyse(words: &[u32], entry: &str) -> Result<Analysis, Error> {
    analyse_model(words, spirv::GL_COMPUTE, entry)
}

/// Analyses entry point `entry` of execution model `model` (`ExecutionModel`: 0 vertex, 4
/// fragment, ...) of the SPIR-V module `words`: for a graphics stage, only what it does with
/// each binding (read, written, atomics, opaque) and whether it uses addresses mean anything;
/// the invocation id patterns are those of compute shaders.
pub fn analyse_stage(words: &[u32], model: u32, entry: &str) -> Result<Analysis, Error> {
    let mut a = analyse_model(words, model, entry)?;
    for b in a.bindings.values_mut() {
        b.disjoint_along = 0;
        b.own = None;
    }
    a.local_size = None;
    Ok(a)
}

fn analyse_model(words: &[u32], model: u32, entry: &str) -> Result<Analysis, Error> {
    let insts = spirv::instructions(words).map_err(Error::Parse)?;
    let mut out = Analysis::default();
    // Module-level facts.
    let mut function = None;
    let mut sets: HashMap<u32, u32> = HashMap::new();
    let mut bindings: HashMap<u32, u32> = HashMap::new();
    let mut gid_vars: Vec<u32> = Vec::new();
    let mut nwg_vars: Vec<u32> = Vec::new();
    let mut ints: HashMap<u32, u32> = HashMap::new();
    let mut consts: HashMap<u32, i64> = HashMap::new();
    let mut vars: HashMap<u32, u32> = HashMap::new();
    let mut types = Types::default();
    let mut sized_by: Option<u32> = None;
    for i in &insts {
        types.learn(i);
        match i.op {
            op::ENTRY_POINT if i.at(0) == model && i.string(2) == entry => {
                function = Some(i.at(1));
            }
            op::DECORATE => match i.at(1) {
                decoration::DESCRIPTOR_SET => {
                    sets.insert(i.at(0), i.at(2));
                }
                decoration::BINDING => {
                    bindings.insert(i.at(0), i.at(2));
                }
                decoration::BUILT_IN if i.at(2) == spirv::GLOBAL_INVOCATION_ID => {
                    gid_vars.push(i.at(0));
                }
                decoration::BUILT_IN if i.at(2) == spirv::WORKGROUP_SIZE => {
                    // A constant (perhaps specialized) that overrides `LocalSize`.
                    sized_by = Some(i.at(0));
                }
                decoration::BUILT_IN if i.at(2) == spirv::NUM_WORKGROUPS => {
                    nwg_vars.push(i.at(0));
                }
                _ => {}
            },
            op::CONSTANT => {
                consts.insert(i.at(1), i64::from(i.at(2) as i32));
            }
            op::TYPE_INT => {
                ints.insert(i.at(0), i.at(1));
            }
            op::TYPE_POINTER if i.at(1) == storage::PHYSICAL_STORAGE_BUFFER => {
                out.addresses = true;
            }
            op::VARIABLE => {
                vars.insert(i.at(1), i.at(2));
            }
            _ => {}
        }
    }
    let Some(function) = function else {
        return Err(Error::NoEntryPoint(entry.to_string()));
    };
    out.num_workgroups = components_read(&insts, &nwg_vars, &consts);
    for i in &insts {
        if i.op == op::EXECUTION_MODE && i.at(0) == function && i.at(1) == spirv::LOCAL_SIZE {
            out.local_size = Some([i.at(2), i.at(3), i.at(4)]);
        }
    }
    if let Some(id) = sized_by {
        // A constant composite gives the size; a specialization constant composite gives one
        // that pipelines may change.
        out.local_size = insts
            .iter()
            .find(|i| i.op == op::CONSTANT_COMPOSITE && i.at(1) == id)
            .and_then(|i| {
                let c = |k: usize| {
                    consts
                        .get(i.operands.get(k)?)
                        .and_then(|v| u32::try_from(*v).ok())
                };
                Some([c(2)?, c(3)?, c(4)?])
            });
    }
    // The resource variables: a descriptor set and binding, in a descriptor storage class.
    let resources: HashMap<u32, ((u32, u32), u32)> = vars
        .iter()
        .filter(|(_, class)| {
            matches!(
                **class,
                storage::UNIFORM_CONSTANT | storage::UNIFORM | storage::STORAGE_BUFFER
            )
        })
        .filter_map(|(id, class)| Some((*id, ((*sets.get(id)?, *bindings.get(id)?), *class))))
        .collect();
    for (key, _) in resources.values() {
        out.bindings.entry(*key).or_default();
    }
    // Function variables stored once: glslang keeps GLSL locals in memory (`uint i =
    // gl_GlobalInvocationID.x;` is a store and loads), so their one value is followed.
    // Stores through a pointer derived from a variable (an access chain: `p.x = 5;`), memory
    // copies into it and function calls given it count against the variable.
    let mut stores: HashMap<u32, u32> = HashMap::new();
    let mut root: HashMap<u32, u32> = HashMap::new();
    for i in &insts {
        let base = |root: &HashMap<u32, u32>, id: u32| root.get(&id).copied().unwrap_or(id);
        match i.op {
            op::ACCESS_CHAIN
            | op::IN_BOUNDS_ACCESS_CHAIN
            | op::PTR_ACCESS_CHAIN
            | op::IN_BOUNDS_PTR_ACCESS_CHAIN
            | op::COPY_OBJECT => {
                let b = base(&root, i.at(2));
                root.insert(i.at(1), b);
            }
            op::STORE => *stores.entry(base(&root, i.at(0))).or_default() += 1,
            op::COPY_MEMORY | op::COPY_MEMORY_SIZED => {
                *stores.entry(base(&root, i.at(0))).or_default() += 2;
            }
            op::FUNCTION_CALL => {
                for a in i.operands.iter().skip(3) {
                    *stores.entry(base(&root, *a)).or_default() += 2;
                }
            }
            _ => {}
        }
    }
    let mut walk = Walk {
        resources: &resources,
        stores: &stores,
        push: vars
            .iter()
            .filter(|(_, class)| **class == storage::PUSH_CONSTANT)
            .map(|(id, _)| (*id, (*id, Vec::new())))
            .collect(),
        locals: HashMap::new(),
        values: consts.iter().map(|(k, v)| (*k, Value::Const(*v))).collect(),
        ptrs: resources
            .keys()
            .map(|v| {
                (
                    *v,
                    Ptr {
                        var: *v,
                        chain: Vec::new(),
                    },
                )
            })
            .collect(),
        images: HashMap::new(),
        gid_ptrs: gid_vars.iter().map(|v| (*v, None)).collect(),
        indexed: HashMap::new(),
        unproven: HashMap::new(),
        ints: &ints,
        plain: Default::default(),
        add_results: Vec::new(),
        own: HashMap::new(),
        out: &mut out,
    };
    let mut inside = false;
    for i in &insts {
        match i.op {
            op::FUNCTION => inside = true,
            op::FUNCTION_END => inside = false,
            _ if inside => walk.inst(i),
            _ => {}
        }
    }
    walk.finish(&insts);
    let own = std::mem::take(&mut walk.own);
    // Per binding: the own bytes of every variable accessed through it (variables aliasing one
    // binding must agree).
    let mut per: HashMap<(u32, u32), Vec<Option<Own>>> = HashMap::new();
    for (var, pattern) in own {
        let Some((key, _)) = resources.get(&var) else {
            continue;
        };
        let bytes = pattern.and_then(|pattern| match pattern {
            OwnPattern::Linear(member, comp, scale, uniform) => {
                let (offset, stride) = types.member_array(var, member)?;
                let push = match uniform {
                    Some((push_var, chain)) => Some(types.push_word(push_var, &chain, &ints)?),
                    None => None,
                };
                Some(Own {
                    comp,
                    offset,
                    bytes: u64::try_from(scale).ok()?.checked_mul(stride)?,
                    push,
                    stride,
                    rows: None,
                })
            }
            OwnPattern::Rows(member, row, col, (push_var, chain)) => {
                let (offset, stride) = types.member_array(var, member)?;
                Some(Own {
                    comp: row,
                    offset,
                    bytes: stride,
                    push: None,
                    stride,
                    rows: Some((col, types.push_word(push_var, &chain, &ints)?)),
                })
            }
        });
        per.entry(*key).or_default().push(bytes);
    }
    for (key, list) in per {
        let agreed = list
            .first()
            .copied()
            .flatten()
            .filter(|o| list.iter().all(|x| *x == Some(*o)));
        if let Some(b) = out.bindings.get_mut(&key).filter(|b| !b.opaque) {
            b.own = agreed;
        }
    }
    Ok(out)
}

/// The types of a module, as far as the byte layout of buffer blocks goes.
#[derive(Default)]
struct Types {
    /// Pointer types: their pointee.
    pointers: HashMap<u32, u32>,
    /// Variables: their (pointer) type.
    vars: HashMap<u32, u32>,
    /// Structs: their member types.
    structs: HashMap<u32, Vec<u32>>,
    /// Member byte offsets (`Offset`), by (struct, member).
    offsets: HashMap<(u32, u32), u64>,
    /// Array types (sized and runtime) with an `ArrayStride`.
    arrays: std::collections::HashSet<u32>,
    strides: HashMap<u32, u64>,
}

impl Types {
    fn learn(&mut self, i: &Inst<'_>) {
        match i.op {
            op::TYPE_POINTER => {
                self.pointers.insert(i.at(0), i.at(2));
            }
            op::VARIABLE => {
                self.vars.insert(i.at(1), i.at(0));
            }
            op::TYPE_STRUCT => {
                self.structs
                    .insert(i.at(0), i.operands.get(1..).unwrap_or(&[]).to_vec());
            }
            op::TYPE_ARRAY | op::TYPE_RUNTIME_ARRAY => {
                self.arrays.insert(i.at(0));
            }
            op::MEMBER_DECORATE if i.at(2) == decoration::OFFSET => {
                self.offsets.insert((i.at(0), i.at(1)), u64::from(i.at(3)));
            }
            op::DECORATE if i.at(1) == decoration::ARRAY_STRIDE => {
                self.strides.insert(i.at(0), u64::from(i.at(2)));
            }
            _ => {}
        }
    }

    /// The byte offset of the push constant `chain` leads to in the block variable `var`,
    /// where it is one member, a 32-bit integer.
    fn push_word(&self, var: u32, chain: &[i64], ints: &HashMap<u32, u32>) -> Option<u32> {
        let [member] = chain else {
            return None;
        };
        let block = self.pointers.get(self.vars.get(&var)?)?;
        let member = u32::try_from(*member).ok()?;
        let ty = *self.structs.get(block)?.get(member as usize)?;
        if ints.get(&ty) != Some(&32) {
            return None;
        }
        u32::try_from(*self.offsets.get(&(*block, member))?).ok()
    }

    /// Where member `member` of the block variable `var` points, when it is an array: its
    /// byte offset and array stride.
    fn member_array(&self, var: u32, member: i64) -> Option<(u64, u64)> {
        let block = self.pointers.get(self.vars.get(&var)?)?;
        let member = u32::try_from(member).ok()?;
        let array = *self.structs.get(block)?.get(member as usize)?;
        if !self.arrays.contains(&array) {
            return None;
        }
        let stride = *self.strides.get(&array)?;
        (stride > 0).then_some((*self.offsets.get(&(*block, member))?, stride))
    }
}

/// The components of the vector variables `vars` (`NumWorkgroups`) that the module's
/// functions read, bit `c` for component `c`: loads through a constant access chain, and
/// `OpCompositeExtract` of a loaded vector, name their component; any other use of the
/// variable, a pointer into it or a loaded vector counts as reading all three.
fn components_read(insts: &[Inst<'_>], vars: &[u32], consts: &HashMap<u32, i64>) -> u8 {
    if vars.is_empty() {
        return 0;
    }
    const ALL: u8 = 0b111;
    let component = |id: u32| -> Option<u8> {
        consts
            .get(&id)
            .and_then(|c| u8::try_from(*c).ok())
            .filter(|c| *c < 3)
    };
    // Pointers to the vector (None) or to one component; vectors loaded whole.
    let mut ptrs: HashMap<u32, Option<u8>> = vars.iter().map(|v| (*v, None)).collect();
    let mut loaded: std::collections::HashSet<u32> = Default::default();
    let mut read = 0u8;
    let mut inside = false;
    for i in insts {
        match i.op {
            op::FUNCTION => inside = true,
            op::FUNCTION_END => inside = false,
            _ if !inside => {}
            op::ACCESS_CHAIN | op::IN_BOUNDS_ACCESS_CHAIN if ptrs.contains_key(&i.at(2)) => {
                match (ptrs[&i.at(2)], i.operands.len(), component(i.at(3))) {
                    (None, 4, Some(c)) => {
                        ptrs.insert(i.at(1), Some(c));
                    }
                    _ => read = ALL,
                }
            }
            op::LOAD if ptrs.contains_key(&i.at(2)) => match ptrs[&i.at(2)] {
                Some(c) => read |= 1 << c,
                None => {
                    loaded.insert(i.at(1));
                }
            },
            op::COMPOSITE_EXTRACT if loaded.contains(&i.at(2)) => match i.operands.get(3) {
                Some(c) if *c < 3 && i.operands.len() == 4 => read |= 1 << c,
                _ => read = ALL,
            },
            _ => {
                if i.operands
                    .iter()
                    .any(|id| ptrs.contains_key(id) || loaded.contains(id))
                {
                    read = ALL;
                }
            }
        }
    }
    read
}

/// The walk over function bodies.
struct Walk<'a> {
    /// Resource variables: (set, binding) and storage class.
    resources: &'a HashMap<u32, ((u32, u32), u32)>,
    /// Stores per pointer, over the module.
    stores: &'a HashMap<u32, u32>,
    /// Pointers into push constants (the variables themselves included), with the constant
    /// access chain.
    push: HashMap<u32, Uniform>,
    /// Function variables stored once, with the value stored (once the store was seen).
    locals: HashMap<u32, Option<Value>>,
    values: HashMap<u32, Value>,
    /// Pointers into resources (the variables themselves included).
    ptrs: HashMap<u32, Ptr>,
    /// Image (and sampled image) values, with their variable; texel pointers too.
    images: HashMap<u32, u32>,
    /// Pointers to the global invocation id, or to one component.
    gid_ptrs: HashMap<u32, Option<u8>>,
    /// Per resource variable: its buffer writes that an index proves disjoint.
    indexed: HashMap<u32, Vec<Indexed>>,
    /// Per resource variable: the components along which every image write so far is
    /// disjoint (buffer writes not proven clear it to 0).
    unproven: HashMap<u32, u8>,
    /// Integer type widths, by type id.
    ints: &'a HashMap<u32, u32>,
    /// Resource variables accessed otherwise than by add atomics (loads, stores, other
    /// atomics).
    plain: std::collections::HashSet<u32>,
    /// The result ids of add atomics, with their variable: used results make the atomics
    /// `Other` (`finish`).
    add_results: Vec<(u32, u32)>,
    /// Per buffer variable loaded or stored through: the one pattern of all its accesses,
    /// `data[gid.comp * scale + K (+ uniform)]` through block member `member` (`Some((member,
    /// comp, scale, uniform))`), or `None` once an access does not fit it (`Binding::own`).
    own: HashMap<u32, Option<OwnPattern>>,
    out: &'a mut Analysis,
}

impl Walk<'_> {
    fn binding(&mut self, var: u32) -> Option<&mut Binding> {
        let (key, _) = self.resources.get(&var)?;
        self.out.bindings.get_mut(key)
    }

    fn read(&mut self, var: u32) {
        self.plain.insert(var);
        if let Some(b) = self.binding(var) {
            b.read = true;
        }
    }

    fn write(&mut self, var: u32) {
        self.plain.insert(var);
        if let Some(b) = self.binding(var) {
            b.written = true;
        }
    }

    fn atomic(&mut self, var: u32, kind: Atomics) {
        self.own.insert(var, None);
        if let Some(b) = self.binding(var) {
            b.read = true;
            b.written = true;
            b.atomics = b.atomics.max(kind);
        }
        self.unproven.insert(var, 0);
    }

    fn opaque(&mut self, var: u32) {
        self.own.insert(var, None);
        if let Some(b) = self.binding(var) {
            b.opaque = true;
            b.read = true;
            b.written = true;
            b.atomics = Atomics::Other;
        }
        self.unproven.insert(var, 0);
    }

    /// The resource variable an id leads to (a pointer, an image or a texel pointer).
    fn resource_of(&self, id: u32) -> Option<u32> {
        self.ptrs
            .get(&id)
            .map(|p| p.var)
            .or_else(|| self.images.get(&id).copied())
    }

    fn inst(&mut self, i: &Inst<'_>) {
        match i.op {
            op::VARIABLE if i.at(2) == FUNCTION_STORAGE => {
                if self.stores.get(&i.at(1)) == Some(&1) {
                    self.locals.insert(i.at(1), None);
                }
            }
            op::ACCESS_CHAIN
            | op::IN_BOUNDS_ACCESS_CHAIN
            | op::PTR_ACCESS_CHAIN
            | op::IN_BOUNDS_PTR_ACCESS_CHAIN => {
                let (result, base) = (i.at(1), i.at(2));
                let indices = i.operands.get(3..).unwrap_or(&[]);
                if let Some(p) = self.ptrs.get(&base).cloned() {
                    if matches!(i.op, op::PTR_ACCESS_CHAIN | op::IN_BOUNDS_PTR_ACCESS_CHAIN) {
                        // The first index steps over whole blocks: not followed as an
                        // element index.
                        self.own.insert(p.var, None);
                    }
                    let mut chain = p.chain;
                    chain.extend_from_slice(indices);
                    self.ptrs.insert(result, Ptr { var: p.var, chain });
                } else if let Some((var, mut chain)) = self.push.get(&base).cloned() {
                    let consts: Option<Vec<i64>> =
                        indices.iter().map(|x| self.constant(*x)).collect();
                    if let Some(c) = consts {
                        chain.extend(c);
                        self.push.insert(result, (var, chain));
                    }
                } else {
                    // A component of the global invocation id, or of a local holding some.
                    let comps = match (self.gid_ptrs.get(&base), self.locals.get(&base)) {
                        (Some(None), _) => Some(vec![0, 1, 2]),
                        (_, Some(Some(Value::Gid(c)))) => Some(c.clone()),
                        _ => None,
                    };
                    let index = indices.first().and_then(|x| self.constant(*x));
                    if let (Some(comps), Some(k), 1) = (comps, index, indices.len()) {
                        if let Some(c) = usize::try_from(k).ok().and_then(|k| comps.get(k)) {
                            self.gid_ptrs.insert(result, Some(*c));
                        }
                    }
                }
            }
            op::LOAD => {
                let (result, ptr) = (i.at(1), i.at(2));
                if let Some(p) = self.ptrs.get(&ptr).cloned() {
                    // An image or sampler handle (one of an array too): reads and writes happen
                    // through image instructions.
                    let handle = self
                        .resources
                        .get(&p.var)
                        .is_some_and(|(_, class)| *class == storage::UNIFORM_CONSTANT);
                    if handle {
                        self.images.insert(result, p.var);
                    } else {
                        self.read(p.var);
                        self.own_access(&p);
                    }
                } else if let Some(g) = self.gid_ptrs.get(&ptr) {
                    let v = match g {
                        Some(c) => Value::gid(*c),
                        None => Value::Gid(vec![0, 1, 2]),
                    };
                    self.values.insert(result, v);
                } else if let Some(Some(v)) = self.locals.get(&ptr) {
                    self.values.insert(result, v.clone());
                } else if let Some(u) = self.push.get(&ptr) {
                    self.values.insert(result, Value::Uniform(u.clone()));
                }
            }
            op::STORE => {
                let ptr = i.at(0);
                if let Some(slot) = self.locals.get_mut(&ptr) {
                    *slot = self.values.get(&i.at(1)).cloned();
                }
                if let Some(p) = self.ptrs.get(&ptr).cloned() {
                    self.write(p.var);
                    self.buffer_write(&p);
                    self.own_access(&p);
                }
                if let Some(var) = self.resource_of(i.at(1)) {
                    // A resource pointer stored somewhere: not followed.
                    self.opaque(var);
                }
            }
            op::COPY_MEMORY | op::COPY_MEMORY_SIZED => {
                if let Some(p) = self.ptrs.get(&i.at(0)).cloned() {
                    self.write(p.var);
                    self.unproven.insert(p.var, 0);
                    self.own.insert(p.var, None);
                }
                if let Some(p) = self.ptrs.get(&i.at(1)).cloned() {
                    self.read(p.var);
                    self.own.insert(p.var, None);
                }
            }
            op::COPY_OBJECT | op::BITCAST | op::U_CONVERT | op::S_CONVERT => {
                let (result, from) = (i.at(1), i.at(2));
                if let Some(p) = self.ptrs.get(&from).cloned() {
                    if i.op == op::BITCAST {
                        // Another pointee type: the chain's indices mean other bytes.
                        self.own.insert(p.var, None);
                    }
                    self.ptrs.insert(result, p);
                } else if let Some(v) = self.images.get(&from).copied() {
                    self.images.insert(result, v);
                } else if let Some(v) = self.values.get(&from).cloned() {
                    self.values.insert(result, v);
                }
            }
            op::SAMPLED_IMAGE | op::IMAGE => {
                if let Some(v) = self.images.get(&i.at(2)).copied() {
                    self.images.insert(i.at(1), v);
                }
            }
            op::IMAGE_TEXEL_POINTER => {
                if let Some(p) = self.ptrs.get(&i.at(2)).cloned() {
                    self.images.insert(i.at(1), p.var);
                }
            }
            op::IMAGE_WRITE => {
                if let Some(var) = self.images.get(&i.at(0)).copied() {
                    self.write(var);
                    let along = match self.values.get(&i.at(1)) {
                        Some(Value::Gid(comps)) => distinct(comps),
                        Some(v) => v.as_gid().map_or(0, |c| 1 << c),
                        None => 0,
                    };
                    let e = self.unproven.entry(var).or_insert(0b111);
                    *e &= along;
                }
            }
            op::VECTOR_SHUFFLE => {
                // (type, result, v1, v2, components...): components of the first vector only.
                if let Some(Value::Gid(first)) = self.values.get(&i.at(2)).cloned() {
                    let picks: Option<Vec<u8>> = i.operands[4.min(i.operands.len())..]
                        .iter()
                        .map(|c| first.get(*c as usize).copied())
                        .collect();
                    if let Some(p) = picks {
                        self.values.insert(i.at(1), Value::Gid(p));
                    }
                }
            }
            op::COMPOSITE_EXTRACT => {
                if let (Some(Value::Gid(comps)), 4) = (self.values.get(&i.at(2)), i.operands.len())
                {
                    if let Some(c) = comps.get(i.at(3) as usize).copied() {
                        self.values.insert(i.at(1), Value::gid(c));
                    }
                }
            }
            op::COMPOSITE_CONSTRUCT => {
                let comps: Option<Vec<u8>> = i.operands[2.min(i.operands.len())..]
                    .iter()
                    .map(|x| self.values.get(x).and_then(Value::as_gid))
                    .collect();
                if let Some(c) = comps {
                    self.values.insert(i.at(1), Value::Gid(c));
                }
            }
            op::I_ADD | op::I_MUL => {
                let (a, b) = (
                    self.values.get(&i.at(2)).cloned(),
                    self.values.get(&i.at(3)).cloned(),
                );
                if let Some(v) = arith(i.op, a, b) {
                    self.values.insert(i.at(1), v);
                }
            }
            x if (op::ATOMIC_LOAD..=op::ATOMIC_XOR).contains(&x)
                || matches!(
                    x,
                    op::ATOMIC_FLAG_TEST_AND_SET
                        | op::ATOMIC_FLAG_CLEAR
                        | op::ATOMIC_F_MIN_EXT
                        | op::ATOMIC_F_MAX_EXT
                        | op::ATOMIC_F_ADD_EXT
                ) =>
            {
                let ptr = if matches!(x, op::ATOMIC_STORE | op::ATOMIC_FLAG_CLEAR) {
                    i.at(0)
                } else {
                    i.at(2)
                };
                if let Some(var) = self.resource_of(ptr) {
                    match x {
                        op::ATOMIC_LOAD => self.read(var),
                        op::ATOMIC_I_INCREMENT
                        | op::ATOMIC_I_DECREMENT
                        | op::ATOMIC_I_ADD
                        | op::ATOMIC_I_SUB
                            if self.ints.get(&i.at(0)) == Some(&32) =>
                        {
                            self.add_results.push((i.at(1), var));
                            self.atomic(var, Atomics::Add)
                        }
                        _ => {
                            self.plain.insert(var);
                            self.atomic(var, Atomics::Other)
                        }
                    }
                }
            }
            // Debug lines, structured control flow, labels, barriers: operands that are
            // literals or labels, never a resource.
            8 | 317 | 224 | 225 | 246..=252 => {}
            _ => {
                // Image reads and queries, samples: a read. Anything else naming a resource
                // (a function call, a pointer select or phi): not followed.
                let known_image_use = (87..=98).contains(&i.op) || (101..=107).contains(&i.op);
                let named: Vec<u32> = i
                    .operands
                    .iter()
                    .filter_map(|x| self.resource_of(*x))
                    .collect();
                for var in named {
                    if known_image_use {
                        self.read(var);
                    } else {
                        self.opaque(var);
                    }
                }
            }
        }
    }

    fn constant(&self, id: u32) -> Option<i64> {
        match self.values.get(&id) {
            Some(Value::Const(c)) => Some(*c),
            _ => None,
        }
    }

    /// A load or store through `p`: whether it keeps to the variable's one pattern of
    /// invocation-own elements (`own`).
    fn own_access(&mut self, p: &Ptr) {
        let pattern = match (
            p.chain.first().and_then(|x| self.constant(*x)),
            p.chain.get(1).and_then(|x| self.values.get(x)),
        ) {
            (
                Some(member),
                Some(Value::Affine {
                    comp,
                    scale,
                    offset,
                    uniform,
                }),
            ) if *scale >= 1
                && (0..*scale).contains(offset)
                && (uniform.is_none() || *scale <= 16) =>
            {
                Some(OwnPattern::Linear(member, *comp, *scale, uniform.clone()))
            }
            (Some(member), Some(Value::Rows { row, col, width })) => {
                Some(OwnPattern::Rows(member, *row, *col, width.clone()))
            }
            _ => None,
        };
        let e = self.own.entry(p.var).or_insert_with(|| pattern.clone());
        if *e != pattern {
            *e = None;
        }
    }

    /// A store through `p`: the index that proves it disjoint, or none.
    fn buffer_write(&mut self, p: &Ptr) {
        let mut prefix = Vec::new();
        for x in &p.chain {
            match self.values.get(x) {
                Some(Value::Const(c)) => prefix.push(*c),
                Some(Value::Affine {
                    comp,
                    scale,
                    offset,
                    uniform,
                }) if *scale >= 1 && (0..*scale).contains(offset) => {
                    self.indexed.entry(p.var).or_default().push(Indexed {
                        prefix,
                        comp: *comp,
                        scale: *scale,
                        uniform: uniform.clone(),
                    });
                    return;
                }
                _ => break,
            }
        }
        self.unproven.insert(p.var, 0);
    }

    /// Settles each written binding's disjointness.
    fn finish(&mut self, insts: &[Inst<'_>]) {
        // Add atomics whose result is used, or on a binding also used otherwise, are not
        // sums of deltas.
        let results: std::collections::HashSet<u32> =
            self.add_results.iter().map(|r| r.0).collect();
        // Only function bodies use results (decorations carry literals such as a BuiltIn's
        // number, which may equal an id). Literal operands of instructions inside them may
        // still match an id: such an add counts as used, the safe side.
        let mut used: std::collections::HashSet<u32> = Default::default();
        let mut inside = false;
        for i in insts {
            match i.op {
                op::FUNCTION => inside = true,
                op::FUNCTION_END => inside = false,
                _ if inside => {
                    let literals_from = match i.op {
                        op::COMPOSITE_EXTRACT => 3,
                        op::VECTOR_SHUFFLE => 4,
                        _ => usize::MAX,
                    };
                    for x in i.operands.iter().take(literals_from).skip(2) {
                        if results.contains(x) {
                            used.insert(*x);
                        }
                    }
                }
                _ => {}
            }
        }
        let downgraded: Vec<u32> = self
            .add_results
            .iter()
            .filter(|(r, v)| used.contains(r) || self.plain.contains(v))
            .map(|r| r.1)
            .collect();
        for var in downgraded {
            if let Some(b) = self.binding(var) {
                b.atomics = Atomics::Other;
            }
        }
        let vars: Vec<u32> = self.resources.keys().copied().collect();
        for var in vars {
            let mut along = self.unproven.get(&var).copied().unwrap_or(0b111);
            if let Some(list) = self.indexed.get(&var) {
                let first = &list[0];
                // One component for all; one stride and one uniform offset per array.
                let same = list.iter().all(|w| {
                    w.comp == first.comp
                        && list
                            .iter()
                            .filter(|o| o.prefix == w.prefix)
                            .all(|o| o.scale == w.scale && o.uniform == w.uniform)
                });
                along &= if same { 1 << first.comp } else { 0 };
            }
            if let Some(b) = self.binding(var) {
                b.disjoint_along = if b.written && !b.opaque { along } else { 0 };
            }
        }
    }
}

/// `StorageClass Function`.
const FUNCTION_STORAGE: u32 = 7;

/// Bits of `comps` when they are distinct components, else 0.
fn distinct(comps: &[u8]) -> u8 {
    let mut mask = 0u8;
    for c in comps {
        if *c > 2 || mask & (1 << c) != 0 {
            return 0;
        }
        mask |= 1 << c;
    }
    mask
}

/// `a + b` or `a * b` of known values.
fn arith(opcode: u16, a: Option<Value>, b: Option<Value>) -> Option<Value> {
    use Value::*;
    match (opcode, a?, b?) {
        (op::I_ADD, Const(x), Const(y)) => Some(Const(x.wrapping_add(y))),
        (op::I_MUL, Const(x), Const(y)) => Some(Const(x.wrapping_mul(y))),
        (
            op::I_ADD,
            Affine {
                comp,
                scale,
                offset,
                uniform,
            },
            Const(k),
        )
        | (
            op::I_ADD,
            Const(k),
            Affine {
                comp,
                scale,
                offset,
                uniform,
            },
        ) => Some(Affine {
            comp,
            scale,
            offset: offset.checked_add(k)?,
            uniform,
        }),
        (
            op::I_ADD,
            Affine {
                comp,
                scale,
                offset,
                uniform: None,
            },
            Uniform(u),
        )
        | (
            op::I_ADD,
            Uniform(u),
            Affine {
                comp,
                scale,
                offset,
                uniform: None,
            },
        ) => Some(Affine {
            comp,
            scale,
            offset,
            uniform: Some(u),
        }),
        (
            op::I_MUL,
            Affine {
                comp,
                scale,
                offset,
                uniform: None,
            },
            Const(k),
        )
        | (
            op::I_MUL,
            Const(k),
            Affine {
                comp,
                scale,
                offset,
                uniform: None,
            },
        ) => Some(Affine {
            comp,
            scale: scale.checked_mul(k)?,
            offset: offset.checked_mul(k)?,
            uniform: None,
        }),
        (
            op::I_MUL,
            Affine {
                comp,
                scale: 1,
                offset: 0,
                uniform: None,
            },
            Uniform(by),
        )
        | (
            op::I_MUL,
            Uniform(by),
            Affine {
                comp,
                scale: 1,
                offset: 0,
                uniform: None,
            },
        ) => Some(Scaled { comp, by }),
        (
            op::I_ADD,
            Scaled { comp: row, by },
            Affine {
                comp: col,
                scale: 1,
                offset: 0,
                uniform: None,
            },
        )
        | (
            op::I_ADD,
            Affine {
                comp: col,
                scale: 1,
                offset: 0,
                uniform: None,
            },
            Scaled { comp: row, by },
        ) if row != col => Some(Rows {
            row,
            col,
            width: by,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compiles a GLSL compute shader with `glslangValidator` (Debian: glslang-tools, which the
    /// examples need too).
    /// The target environment a test shader is compiled for: Vulkan 1.1 unless its source
    /// names another in a `// target: ` comment.
    pub(crate) fn env_of(source: &str) -> &str {
        source
            .split_once("// target: ")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or("vulkan1.1")
    }

    pub(crate) fn compile(name: &str, source: &str) -> Vec<u32> {
        let dir = std::env::temp_dir().join(format!("vkfuse-shader-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A name ending in a graphics stage's extension is that stage's source.
        let src = match name.rsplit_once('.') {
            Some((_, "vert" | "frag")) => dir.join(name),
            _ => dir.join(format!("{name}.comp")),
        };
        let spv = dir.join(format!("{name}.spv"));
        std::fs::write(&src, source).unwrap();
        let glslang =
            std::env::var_os("GLSLANG_VALIDATOR").unwrap_or_else(|| "glslangValidator".into());
        let out = std::process::Command::new(&glslang)
            .args(["-V", "--target-env", env_of(source), "-o"])
            .arg(&spv)
            .arg(&src)
            .output()
            .unwrap_or_else(|e| panic!("{glslang:?}: {e} (Debian: apt-get install glslang-tools)"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let bytes = std::fs::read(&spv).unwrap();
        bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    fn analysed(name: &str, body: &str) -> Analysis {
        let source = format!("#version 450\nlayout(local_size_x = 64) in;\n{body}");
        match analyse(&compile(name, &source), "main") {
            Ok(a) => a,
            Err(e) => panic!("{name}: {e}"),
        }
    }

    /// Graphics stages: what each does with its bindings, and a pipeline's union of them.
    #[test]
    fn graphics_stages_read_and_write_their_bindings() {
        let vert = compile(
            "stage.vert",
            "#version 450
            layout(set = 0, binding = 1) readonly buffer Q { vec4 quads[]; };
            layout(set = 0, binding = 2) buffer C { uint counter; };
            void main() {
                gl_Position = quads[gl_VertexIndex / 4];
            }",
        );
        let frag = compile(
            "stage.frag",
            "#version 450
            layout(set = 0, binding = 0) uniform sampler2D tex;
            layout(set = 0, binding = 3) buffer H { uint hits[]; };
            layout(set = 0, binding = 4, r32ui) uniform writeonly uimage2D marks;
            layout(location = 0) out vec4 color;
            void main() {
                color = texture(tex, gl_FragCoord.xy);
                atomicAdd(hits[0], 1u);
                imageStore(marks, ivec2(gl_FragCoord.xy), uvec4(1u));
            }",
        );
        assert_eq!(stage_entry_points(&vert), vec![(0, "main".to_string())]);
        assert_eq!(stage_entry_points(&frag), vec![(4, "main".to_string())]);
        assert!(compute_entry_points(&vert).is_empty());
        let (v, f) = match (
            analyse_stage(&vert, 0, "main"),
            analyse_stage(&frag, 4, "main"),
        ) {
            (Ok(v), Ok(f)) => (v, f),
            other => panic!("{other:?}"),
        };
        assert!(
            analyse_stage(&vert, 4, "main").is_err(),
            "no fragment entry point"
        );
        let rw = |a: &Analysis, b: u32| {
            let x = a.bindings[&(0, b)];
            (x.read, x.written, x.opaque)
        };
        // The storage buffer the vertex shader only reads is read, not written; the one it
        // declares and never uses is neither.
        assert_eq!(rw(&v, 1), (true, false, false));
        assert_eq!(rw(&v, 2), (false, false, false));
        assert_eq!(rw(&f, 0), (true, false, false));
        assert!(f.bindings[&(0, 3)].written);
        assert_eq!(f.bindings[&(0, 3)].atomics, Atomics::Add);
        assert!(f.bindings[&(0, 4)].written);
        let u = Analysis::union_of([&v, &f]);
        assert_eq!(rw(&u, 1), (true, false, false));
        assert!(u.bindings[&(0, 3)].written && u.bindings[&(0, 4)].written);
        assert_eq!(u.bindings.len(), 5);
    }

    pub(crate) const SAXPY: &str = "
        layout(set = 0, binding = 0) readonly buffer X { float x[]; };
        layout(set = 0, binding = 1) buffer Y { float y[]; };
        layout(push_constant) uniform P { float a; uint n; };
        void main() {
            uint i = gl_GlobalInvocationID.x;
            if (i < n) y[i] = a * x[i] + y[i];
        }";

    #[test]
    fn saxpy_writes_its_own_elements() {
        let a = analysed("saxpy", SAXPY);
        assert_eq!(a.local_size, Some([64, 1, 1]));
        let x = a.bindings[&(0, 0)];
        let y = a.bindings[&(0, 1)];
        assert!(x.read && !x.written && !x.opaque);
        assert!(y.read && y.written && y.atomics == Atomics::None);
        assert_eq!(y.disjoint_along, 0b001);
        assert!(a.splits_along(0));
        assert!(!a.splits_along(1));
        assert!(!a.addresses);
    }

    /// Rows of a row-major matrix indexed `gid.y * width + gid.x` with a push constant width
    /// (mandelbrot's output, matmul's product) are each invocation row's own; reads of other
    /// rows, other widths and other forms are not.
    #[test]
    fn rows_indexed_by_a_push_constant_width_are_own() {
        let rows = |comp, offset, stride, col, at| {
            Some(Own {
                comp,
                offset,
                bytes: stride,
                push: None,
                stride,
                rows: Some((col, at)),
            })
        };
        let m = analysed(
            "rows-mandelbrot",
            "layout(set = 0, binding = 0) writeonly buffer O { uint iterations[]; };
            layout(push_constant) uniform P { uint width; uint height; uint limit; } pc;
            void main() {
                uvec2 p = gl_GlobalInvocationID.xy;
                if (p.x >= pc.width || p.y >= pc.height) return;
                iterations[p.y * pc.width + p.x] = pc.limit;
            }",
        );
        assert_eq!(m.bindings[&(0, 0)].own, rows(1, 0, 4, 0, 0));
        let mm = analysed(
            "rows-matmul",
            "layout(set = 0, binding = 0) readonly buffer A { uint a[]; };
            layout(set = 0, binding = 1) writeonly buffer C { uint pad; uint c[]; };
            layout(push_constant) uniform P { uint skip; uint n; } pc;
            void main() {
                uint row = gl_GlobalInvocationID.y;
                uint col = gl_GlobalInvocationID.x;
                c[row * pc.n + col] = a[col * pc.n + row];
            }",
        );
        // `a[col * n + row]`: invocation column `col` reads row `col` of `a`, its own along x.
        assert_eq!(mm.bindings[&(0, 0)].own, rows(0, 0, 4, 1, 4));
        assert_eq!(mm.bindings[&(0, 1)].own, rows(1, 4, 4, 0, 4));
        // Another row's elements, a width that is not a push constant, the same component
        // twice: not own.
        for (name, body) in [
            (
                "rows-next",
                "layout(set = 0, binding = 0) buffer O { uint o[]; };
                layout(push_constant) uniform P { uint w; } pc;
                void main() {
                    uvec2 p = gl_GlobalInvocationID.xy;
                    o[p.y * pc.w + p.x] = o[(p.y + 1u) * pc.w + p.x];
                }",
            ),
            (
                "rows-uniform",
                "layout(set = 0, binding = 0) buffer O { uint o[]; };
                layout(set = 0, binding = 1) uniform U { uint w; } u;
                void main() {
                    uvec2 p = gl_GlobalInvocationID.xy;
                    o[p.y * u.w + p.x] = 1u;
                }",
            ),
            (
                "rows-same",
                "layout(set = 0, binding = 0) buffer O { uint o[]; };
                layout(push_constant) uniform P { uint w; } pc;
                void main() {
                    uvec2 p = gl_GlobalInvocationID.xy;
                    o[p.x * pc.w + p.x] = 1u;
                }",
            ),
        ] {
            assert_eq!(analysed(name, body).bindings[&(0, 0)].own, None, "{name}");
        }
    }

    #[test]
    fn own_bytes_are_proven_for_reads_and_writes() {
        let a = analysed("saxpy-own", SAXPY);
        let own_s = |comp, offset, bytes, stride| {
            Some(Own {
                comp,
                offset,
                bytes,
                push: None,
                stride,
                rows: None,
            })
        };
        let own = |comp, offset, bytes| own_s(comp, offset, bytes, bytes);
        assert_eq!(a.bindings[&(0, 0)].own, own(0, 0, 4));
        assert_eq!(a.bindings[&(0, 1)].own, own(0, 0, 4));
        // A header before the array, two elements per invocation, a struct element, a
        // vec4 stride.
        let a = analysed(
            "own-layouts",
            "struct P { uint a; uint b; };
             layout(binding = 0) buffer A { uint count; uint data[]; };
             layout(binding = 1) buffer B { uint o[]; };
             layout(binding = 2) buffer C { P ps[]; };
             layout(binding = 3) readonly buffer D { vec4 v[]; };
             void main() {
                 uint i = gl_GlobalInvocationID.y;
                 data[i] = data[i] + 1u;
                 o[i * 2u] = ps[i].a;
                 o[i * 2u + 1u] = uint(v[i].z);
                 ps[i].b = 3u;
             }",
        );
        assert_eq!(a.bindings[&(0, 0)].own, own(1, 4, 4));
        assert_eq!(a.bindings[&(0, 1)].own, own_s(1, 0, 8, 4));
        assert_eq!(a.bindings[&(0, 2)].own, own(1, 0, 8));
        assert_eq!(a.bindings[&(0, 3)].own, own(1, 0, 16));
        // A neighbour's element, a header read by all, an atomic, two components, elements
        // past the stride: not proven.
        let a = analysed(
            "not-own",
            "layout(binding = 0) readonly buffer I { uint src[]; };
             layout(binding = 1) buffer O { uint dst[]; };
             layout(binding = 2) buffer H { uint count; uint data[]; };
             layout(binding = 3) buffer U { uint u[]; };
             layout(binding = 4) buffer T { uint t[]; };
             layout(binding = 5) buffer S { uint s[]; };
             layout(binding = 6) buffer W { uint w[]; };
             layout(push_constant) uniform P { uint first; } pc;
             void main() {
                 uint i = gl_GlobalInvocationID.x;
                 dst[i] = src[i] + src[i + 1u];
                 data[i] = count;
                 u[pc.first + i] = 1u;
                 atomicAdd(t[i], 1u);
                 s[i] = s[gl_GlobalInvocationID.y];
                 w[i] = 1u;
                 w[i + 1u] = 2u;
             }",
        );
        assert_eq!(a.bindings[&(0, 1)].own, own(0, 0, 4));
        assert_eq!(a.local_size, Some([64, 1, 1]));
        // The push constant offset: its own bytes move by it.
        assert_eq!(
            a.bindings[&(0, 3)].own,
            own(0, 0, 4).map(|o| Own { push: Some(0), ..o })
        );
        for b in [0, 2, 4, 5, 6] {
            assert_eq!(a.bindings[&(0, b)].own, None, "binding {b}");
        }
        // Two blocks aliasing one binding, one of them read at another invocation's element.
        let a = analysed(
            "aliased",
            "layout(binding = 0) buffer A { uint a[]; };
             layout(binding = 0) buffer B { uint b[]; };
             void main() {
                 uint i = gl_GlobalInvocationID.x;
                 a[i] = b[i + 1u];
             }",
        );
        assert_eq!(a.bindings[&(0, 0)].own, None);
    }

    #[test]
    fn specialized_workgroup_sizes_are_not_known() {
        // `local_size_x_id`: a WorkgroupSize constant that specialization may change; the
        // LocalSize execution mode only gives its default.
        let source = format!("#version 450\nlayout(local_size_x_id = 0) in;\n{SAXPY}");
        let a = analyse(&compile("spec-size", &source), "main").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.local_size, None);
        // The bindings' own bytes do not depend on it.
        assert!(a.bindings[&(0, 1)].own.is_some());
    }

    #[test]
    fn strided_writes_are_disjoint_only_within_their_stride() {
        let a = analysed(
            "stride",
            "layout(binding = 0) buffer O { uint o[]; };
             void main() {
                 uint i = gl_GlobalInvocationID.x;
                 o[i * 2u] = i;
                 o[i * 2u + 1u] = i + 7u;
             }",
        );
        assert_eq!(a.bindings[&(0, 0)].disjoint_along, 0b001);
        let a = analysed(
            "overlap",
            "layout(binding = 0) buffer O { uint o[]; };
             void main() {
                 uint i = gl_GlobalInvocationID.x;
                 o[i] = 1u;
                 o[i + 1u] = 2u;
             }",
        );
        assert_eq!(a.bindings[&(0, 0)].disjoint_along, 0);
        assert!(!a.splits_along(0));
        // A constant index: every invocation writes the same element.
        let a = analysed(
            "constant",
            "layout(binding = 0) buffer O { uint o[]; };
             void main() { o[3] = gl_GlobalInvocationID.x; }",
        );
        assert!(a.bindings[&(0, 0)].written);
        assert_eq!(a.bindings[&(0, 0)].disjoint_along, 0);
    }

    #[test]
    fn push_constant_offsets_keep_slices_disjoint() {
        // The `compute` example's indexing: a first element given per dispatch.
        let a = analysed(
            "offset",
            "layout(binding = 0) buffer O { uint o[]; };
             layout(push_constant) uniform P { uint first; uint other; } pc;
             void main() {
                 uint i = pc.first + gl_GlobalInvocationID.x;
                 o[i] = o[i] + 1u;
             }",
        );
        assert_eq!(a.bindings[&(0, 0)].disjoint_along, 0b001);
        assert_eq!(a.bindings[&(0, 0)].own.and_then(|o| o.push), Some(0));
        // Two different offsets may overlap.
        let a = analysed(
            "offsets",
            "layout(binding = 0) buffer O { uint o[]; };
             layout(push_constant) uniform P { uint first; uint other; } pc;
             void main() {
                 o[pc.first + gl_GlobalInvocationID.x] = 1u;
                 o[pc.other + gl_GlobalInvocationID.x] = 2u;
             }",
        );
        assert_eq!(a.bindings[&(0, 0)].disjoint_along, 0);
        assert_eq!(a.bindings[&(0, 0)].own, None);
    }

    #[test]
    fn split_refusals() {
        let a = analysed(
            "saxpy-refusal",
            "layout(binding = 0) buffer Y { float y[]; };
             void main() { y[gl_GlobalInvocationID.x] *= 2.0; }",
        );
        assert_eq!(a.split_refusal(), None);
        assert_eq!(a.num_workgroups, 0);
        // A slice sees its own group count in gl_NumWorkGroups: rows indexed by the width
        // may be cut along y, not x.
        let a = analysed(
            "rows",
            "layout(binding = 0) buffer O { uint o[]; };
             void main() {
                 uint w = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
                 o[gl_GlobalInvocationID.y * w + gl_GlobalInvocationID.x] = 1u;
             }",
        );
        assert_eq!(a.num_workgroups, 0b001);
        assert_eq!(a.split_refusal(), None);
        assert!(!a.cuts_along(0) && a.cuts_along(1) && a.cuts_along(2));
        // The vector used whole: no dimension.
        let a = analysed(
            "whole",
            "layout(binding = 0) buffer O { uvec3 o[]; };
             void main() { o[gl_GlobalInvocationID.x] = gl_NumWorkGroups; }",
        );
        assert_eq!(a.num_workgroups, 0b111);
        assert_eq!(a.split_refusal(), Some("it reads gl_NumWorkGroups"));
    }

    #[test]
    fn atomics_are_told_apart() {
        let a = analysed(
            "histogram",
            "layout(binding = 0) readonly buffer I { uint v[]; };
             layout(binding = 1) buffer H { uint bins[]; };
             void main() { atomicAdd(bins[v[gl_GlobalInvocationID.x] & 255u], 1u); }",
        );
        let h = a.bindings[&(0, 1)];
        assert!(h.written && h.atomics == Atomics::Add && h.disjoint_along == 0);
        assert!(!a.bindings[&(0, 0)].written);
        assert!(!a.splits_along(0));
        assert_eq!(a.split_refusal(), None);
        assert!(a.adds());
        // The old value used (a slot handed out): not a sum of deltas.
        let a = analysed(
            "slots",
            "layout(binding = 0) buffer C { uint next; };
             layout(binding = 1) buffer O { uint o[]; };
             void main() { o[atomicAdd(next, 1u)] = gl_GlobalInvocationID.x; }",
        );
        assert_eq!(a.bindings[&(0, 0)].atomics, Atomics::Other);
        assert!(a.split_refusal().is_some());
        // The counter also read: not a sum of deltas either.
        let a = analysed(
            "counted",
            "layout(binding = 0) buffer C { uint count; uint seen[]; };
             void main() {
                 atomicAdd(count, 1u);
                 seen[gl_GlobalInvocationID.x] = count;
             }",
        );
        assert_eq!(a.bindings[&(0, 0)].atomics, Atomics::Other);
        // Other atomics.
        // Two counters in one block, results unused (bench-record's shader; glslang decorates
        // `gl_WorkGroupSize` with BuiltIn 25, which may equal a result id).
        let a = analysed(
            "two-counters",
            "layout(binding = 0) buffer C { uint sum; uint dispatches; } c;
             layout(push_constant) uniform P { uint value; } pc;
             void main() {
                 atomicAdd(c.sum, pc.value);
                 atomicAdd(c.dispatches, 1u);
             }",
        );
        assert_eq!(a.bindings[&(0, 0)].atomics, Atomics::Add);
        let a = analysed(
            "maximum",
            "layout(binding = 0) buffer M { uint m; };
             void main() { atomicMax(m, gl_GlobalInvocationID.x); }",
        );
        assert_eq!(a.bindings[&(0, 0)].atomics, Atomics::Other);
        assert!(a.split_refusal().is_some());
        let a = analysed(
            "maximum",
            "layout(binding = 0) buffer H { uint m[]; };
             void main() { atomicMax(m[0], gl_GlobalInvocationID.x); }",
        );
        assert_eq!(a.bindings[&(0, 0)].atomics, Atomics::Other);
    }

    #[test]
    fn image_filters_write_their_own_texels() {
        let a = analysed(
            "filter",
            "layout(binding = 0, r32f) uniform readonly image2D src;
             layout(binding = 1, r32f) uniform writeonly image2D dst;
             layout(binding = 2) uniform sampler2D lut;
             void main() {
                 ivec2 p = ivec2(gl_GlobalInvocationID.xy);
                 float v = imageLoad(src, p).x + imageLoad(src, p + ivec2(1, 0)).x;
                 imageStore(dst, p, vec4(v + texture(lut, vec2(0.5)).x));
             }",
        );
        let (src, dst, lut) = (
            a.bindings[&(0, 0)],
            a.bindings[&(0, 1)],
            a.bindings[&(0, 2)],
        );
        assert!(src.read && !src.written);
        assert!(lut.read && !lut.written);
        assert!(dst.written && !dst.opaque);
        assert_eq!(dst.disjoint_along, 0b011);
        assert!(a.splits_along(0) && a.splits_along(1));
        // Swapped or repeated components still name distinct texels per invocation only when
        // distinct.
        let a = analysed(
            "diagonal",
            "layout(binding = 0, r32f) uniform writeonly image2D dst;
             void main() {
                 uint x = gl_GlobalInvocationID.x;
                 imageStore(dst, ivec2(x, x), vec4(1.0));
             }",
        );
        assert_eq!(a.bindings[&(0, 0)].disjoint_along, 0);
    }

    #[test]
    fn arrays_of_images_and_buffers_are_followed() {
        let a = analysed(
            "arrays",
            "layout(binding = 0, r32ui) uniform writeonly uimage2D imgs[4];
             layout(binding = 1, r32ui) uniform writeonly uimageBuffer texels[2];
             layout(binding = 2) buffer B { uint v[]; } bufs[3];
             layout(push_constant) uniform P { uint k; } pc;
             void main() {
                 ivec2 p = ivec2(gl_GlobalInvocationID.xy);
                 imageStore(imgs[1], p, uvec4(1u));
                 imageStore(texels[pc.k], p.x, uvec4(2u));
                 bufs[2].v[gl_GlobalInvocationID.x] = 3u;
             }",
        );
        for b in [(0, 0), (0, 1), (0, 2)] {
            assert!(a.bindings[&b].written, "{b:?}: {:?}", a.bindings[&b]);
            assert!(!a.bindings[&b].read, "{b:?}: {:?}", a.bindings[&b]);
        }
    }

    #[test]
    fn locals_changed_in_part_are_not_followed() {
        // `i` is stored once whole, then its component changed through an access chain.
        let a = analysed(
            "partial",
            "layout(binding = 0) buffer O { uint o[]; };
             void main() {
                 uvec2 i = gl_GlobalInvocationID.xy;
                 i.x = 0u;
                 o[i.x] = 1u;
             }",
        );
        assert_eq!(a.bindings[&(0, 0)].disjoint_along, 0);
    }

    #[test]
    fn rows_indexed_by_a_runtime_width_are_not_proven() {
        // out[y * width + x]: disjoint per row in fact, but the width is not a constant, so
        // not for every dispatch (only for one whose grid fits the width: `Own::rows`, which
        // the ICD checks per dispatch).
        let a = analysed(
            "rows",
            "layout(binding = 0) buffer O { uint o[]; };
             layout(push_constant) uniform P { uint width; };
             void main() {
                 uvec3 g = gl_GlobalInvocationID;
                 o[g.y * width + g.x] = g.x;
             }",
        );
        let o = a.bindings[&(0, 0)];
        assert!(o.written && o.disjoint_along == 0);
        assert_eq!(o.own.and_then(|own| own.rows), Some((0, 0)));
    }

    #[test]
    fn compute_entry_points_are_listed() {
        let words = compile(
            "entries",
            &format!("#version 450\nlayout(local_size_x = 64) in;\n{SAXPY}"),
        );
        assert_eq!(compute_entry_points(&words), vec!["main".to_string()]);
        assert!(compute_entry_points(&words[..3]).is_empty());
    }

    #[test]
    fn missing_entry_points_and_non_spirv_are_errors() {
        let words = compile(
            "saxpy-entry",
            &format!("#version 450\nlayout(local_size_x = 64) in;\n{SAXPY}"),
        );
        assert_eq!(
            analyse(&words, "other"),
            Err(Error::NoEntryPoint("other".into()))
        );
        assert_eq!(
            analyse(&words[..3], "main"),
            Err(Error::Parse(spirv::ParseError::NotSpirv))
        );
    }
}

//! A compute entry point rewritten to run only its slice of a dispatch's workgroups (issue 4:
//! indirect dispatches whose group counts the GPU writes).
//!
//! `vkCmdDispatchBase` slices a dispatch whose group counts are known when it is recorded;
//! an indirect dispatch's counts may be written by earlier work of the same batch, on the
//! device, and there is no indirect form of `vkCmdDispatchBase`. Instead, every member
//! dispatches the whole grid indirectly with a rewritten pipeline, whose workgroups outside
//! the member's slice return at once:
//!
//! ```text
//! n, g = the group count and workgroup id along z if the grid has several layers, else
//!        along y if it has several rows, else along x
//! lo   = n * LO / PARTS,  hi = n * HI / PARTS     (exact, without overflow)
//! if !(lo <= g && g < hi) return;
//! ```
//!
//! `LO` and `HI` are two specialization constants the rewrite adds (`Sliced::ids`), so one
//! rewritten module serves every slice: members' slices `[LO, HI)` that tile `0..PARTS`
//! run every workgroup exactly once. The workgroup ids and `gl_NumWorkGroups` stay those of
//! the whole grid, so the shader computes what it would have. A workgroup leaves as a
//! whole, before anything else, so barriers and subgroup operations stay in uniform control
//! flow.
//!
//! The rewrite: the `WorkgroupId` and `NumWorkgroups` built-ins (declared where the module
//! has none, and added to the entry point's interface), the types and constants the test
//! needs (existing scalar and vector types reused: SPIR-V forbids declaring them twice), and
//! a new first block of the entry point's function: its variables, the test, a selection
//! whose merge block is the old first block (keeping its label, so nothing that names it
//! changes), and a block that returns.

use std::collections::{HashMap, HashSet};

use crate::spirv::{self, decoration, op, storage};
use crate::Error;

/// Slices are whole multiples of `1 / PARTS` of the grid along the dimension they cut.
pub const PARTS: u32 = 16;

/// An entry point rewritten to run only its slice of the workgroups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sliced {
    /// The rewritten module.
    pub words: Vec<u32>,
    /// The specialization constant ids of the slice's first and end part (`LO` and `HI`,
    /// in `0..=PARTS`; by default `0` and `PARTS`: the whole grid), and of `NARROW` (0 by
    /// default: the whole grid is dispatched and workgroups outside the slice return; 1:
    /// only the slice's workgroups are dispatched, see [`narrowed_count`]).
    pub ids: [u32; 3],
    /// Whether `NARROW` may be set: every use of the `WorkgroupId` and
    /// `GlobalInvocationId` built-ins was redirected, and the workgroup size along x is
    /// known where the latter is used. The caller must also check that the shader does not
    /// read `gl_NumWorkGroups.x`, which a narrowed dispatch changes.
    pub narrow: bool,
}

/// The group count along x of a narrowed dispatch of slice `lo..hi` (of [`PARTS`]) of a
/// grid `n` groups wide: its workgroups are those whose id along x, modulo `PARTS`, lies
/// in `lo..hi`, the `s`-th of them `(s / (hi - lo)) * PARTS + lo + s % (hi - lo)` (the
/// rewritten shader's `WorkgroupId.x`). Slices that tile `0..PARTS` run every workgroup
/// exactly once. The ICD computes the same on the device (its `narrow.comp`).
pub fn narrowed_count(n: u32, (lo, hi): (u32, u32)) -> u32 {
    let w = hi.saturating_sub(lo);
    let rest = (n % PARTS).saturating_sub(lo).min(w);
    (n / PARTS) * w + rest
}

/// The workgroup id along x that the `s`-th workgroup of a narrowed dispatch of slice
/// `lo..hi` stands for ([`narrowed_count`]).
pub fn narrowed_group(s: u32, (lo, hi): (u32, u32)) -> u32 {
    let w = hi.saturating_sub(lo).max(1);
    (s / w) * PARTS + lo + s % w
}

/// The first specialization constant id the rewrite tries (`"vF"` in its high half): ids the
/// module declares are skipped.
const FIRST_ID: u32 = 0x7646_0000;

/// More ids than the rewrite ever adds (types, variables, constants and the test's values).
const ADDED: u32 = 64;

/// Opcodes the rewrite writes or reads beyond the analysis's.
mod code {
    pub const LINE: u16 = 8;
    pub const NO_LINE: u16 = 317;
    pub const TYPE_BOOL: u16 = 20;
    pub const TYPE_VECTOR: u16 = 23;
    pub const SPEC_CONSTANT: u16 = 50;
    pub const I_SUB: u16 = 130;
    pub const U_DIV: u16 = 134;
    pub const U_MOD: u16 = 137;
    pub const LOGICAL_OR: u16 = 166;
    pub const LOGICAL_AND: u16 = 167;
    pub const I_NOT_EQUAL: u16 = 171;
    pub const COMPOSITE_INSERT: u16 = 82;
    pub const NAME: u16 = 5;
    pub const SELECT: u16 = 169;
    pub const U_GREATER_THAN: u16 = 172;
    pub const U_GREATER_THAN_EQUAL: u16 = 174;
    pub const U_LESS_THAN: u16 = 176;
    pub const SELECTION_MERGE: u16 = 247;
    pub const LABEL: u16 = 248;
    pub const BRANCH_CONDITIONAL: u16 = 250;
    pub const RETURN: u16 = 253;
    pub const DECORATION_GROUP: u16 = 73;
    pub const GROUP_DECORATE: u16 = 74;
    pub const GROUP_MEMBER_DECORATE: u16 = 75;
    /// Instructions of the module's sections before types, constants and variables
    /// (capabilities to annotations).
    pub const PREAMBLE: [u16; 21] = [
        2, 3, 4, 5, 6, 7, 10, 11, 14, 15, 16, 17, 71, 72, 73, 74, 75, 330, 331, 332, 5632,
    ];
    pub const MEMBER_DECORATE_STRING: u16 = 5633;
}

/// `Decoration SpecId`.
const SPEC_ID: u32 = 1;
/// `BuiltIn WorkgroupId`.
const WORKGROUP_ID: u32 = 26;
/// `StorageClass Private`.
const PRIVATE: u32 = 6;
/// `ExecutionMode LocalSizeId`.
const LOCAL_SIZE_ID: u32 = 38;

/// An instruction's words, the first holding the word count and opcode.
fn inst(opcode: u16, operands: &[u32]) -> Vec<u32> {
    let mut w = Vec::with_capacity(operands.len() + 1);
    w.push(((operands.len() as u32 + 1) << 16) | u32::from(opcode));
    w.extend_from_slice(operands);
    w
}

/// Entry point `entry` (a `GLCompute` one) of the SPIR-V module `words`, rewritten to run
/// only the workgroups of the slice its two added specialization constants give.
pub fn workgroup_slice(words: &[u32], entry: &str) -> Result<Sliced, Error> {
    let insts = spirv::instructions(words).map_err(Error::Parse)?;
    let refuse = |why: &'static str| Err(Error::Rewrite(why));
    // The ids the rewrite adds (fewer than `ADDED`) must stay below the largest id.
    let mut bound = words[3];
    if bound > u32::MAX - ADDED {
        return refuse("its id bound leaves no room for new ids");
    }
    let mut fresh = || {
        let id = bound;
        bound += 1;
        id
    };
    // What the module has.
    let mut entry_at = None;
    let (mut uint, mut boolean, mut v3, mut ptr) = (None, None, None, None);
    let mut builtins: HashMap<u32, u32> = HashMap::new();
    let mut spec_ids: HashSet<u32> = HashSet::new();
    let mut var_types: HashMap<u32, u32> = HashMap::new();
    let mut pointees: HashMap<u32, (u32, u32)> = HashMap::new();
    // Per function: its `LocalSize` x (a literal) or `LocalSizeId` x (an id).
    let mut local_x: HashMap<u32, Result<u32, u32>> = HashMap::new();
    for (n, i) in insts.iter().enumerate() {
        match i.op {
            op::EXECUTION_MODE if i.at(1) == spirv::LOCAL_SIZE => {
                local_x.insert(i.at(0), Ok(i.at(2)));
            }
            spirv::op::EXECUTION_MODE_ID if i.at(1) == LOCAL_SIZE_ID => {
                local_x.insert(i.at(0), Err(i.at(2)));
            }
            op::ENTRY_POINT if i.at(0) == spirv::GL_COMPUTE && i.string(2) == entry => {
                entry_at = Some(n);
            }
            op::DECORATE if i.at(1) == decoration::BUILT_IN => {
                builtins.insert(i.at(2), i.at(0));
            }
            op::DECORATE if i.at(1) == SPEC_ID => {
                spec_ids.insert(i.at(2));
            }
            code::DECORATION_GROUP | code::GROUP_DECORATE | code::GROUP_MEMBER_DECORATE => {
                return refuse("it uses decoration groups");
            }
            op::TYPE_INT if i.at(1) == 32 && i.at(2) == 0 => uint = uint.or(Some(i.at(0))),
            code::TYPE_BOOL => boolean = boolean.or(Some(i.at(0))),
            op::TYPE_POINTER => {
                pointees.insert(i.at(0), (i.at(1), i.at(2)));
            }
            op::VARIABLE => {
                var_types.insert(i.at(1), i.at(0));
            }
            _ => {}
        }
    }
    for i in &insts {
        if i.op == code::TYPE_VECTOR && Some(i.at(1)) == uint && i.at(2) == 3 {
            v3 = v3.or(Some(i.at(0)));
        }
    }
    for (id, (class, pointee)) in &pointees {
        if *class == storage::INPUT && Some(*pointee) == v3 {
            ptr = Some(ptr.map_or(*id, |p: u32| p.min(*id)));
        }
    }
    let Some(entry_at) = entry_at else {
        return Err(Error::NoEntryPoint(entry.to_string()));
    };
    let function = insts[entry_at].at(1);
    if insts
        .iter()
        .any(|i| i.op == op::FUNCTION_CALL && i.at(2) == function)
    {
        return refuse("its entry point is also called as a function");
    }
    // Built-ins the module declares must be unsigned 3-vectors of 32 bits in Input.
    for b in [WORKGROUP_ID, spirv::NUM_WORKGROUPS] {
        if let Some(var) = builtins.get(&b) {
            let ty = var_types.get(var).and_then(|t| pointees.get(t));
            if v3.is_none() || ty != Some(&(storage::INPUT, v3.unwrap_or(0))) {
                return refuse("it declares a workgroup built-in of another type");
            }
        }
    }
    // New declarations, after the module's.
    let mut decorations: Vec<Vec<u32>> = Vec::new();
    let mut globals: Vec<Vec<u32>> = Vec::new();
    let uint = uint.unwrap_or_else(|| {
        let id = fresh();
        globals.push(inst(op::TYPE_INT, &[id, 32, 0]));
        id
    });
    let boolean = boolean.unwrap_or_else(|| {
        let id = fresh();
        globals.push(inst(code::TYPE_BOOL, &[id]));
        id
    });
    let v3 = v3.unwrap_or_else(|| {
        let id = fresh();
        globals.push(inst(code::TYPE_VECTOR, &[id, uint, 3]));
        id
    });
    let ptr = ptr.unwrap_or_else(|| {
        let id = fresh();
        globals.push(inst(op::TYPE_POINTER, &[id, storage::INPUT, v3]));
        id
    });
    let mut builtin = |b: u32| {
        builtins.get(&b).copied().unwrap_or_else(|| {
            let id = fresh();
            globals.push(inst(op::VARIABLE, &[ptr, id, storage::INPUT]));
            decorations.push(inst(op::DECORATE, &[id, decoration::BUILT_IN, b]));
            id
        })
    };
    let had_wg = builtins.contains_key(&WORKGROUP_ID);
    let (wg_var, nwg_var) = (builtin(WORKGROUP_ID), builtin(spirv::NUM_WORKGROUPS));
    // A narrowed dispatch: the workgroup and global ids the module reads become private
    // variables the new first block sets (`redirect`: the built-in variables the module
    // declares, uses of which are all loads and access chains).
    let gid_var = builtins.get(&spirv::GLOBAL_INVOCATION_ID).copied();
    let redirect: Vec<u32> = [had_wg.then_some(wg_var), gid_var]
        .into_iter()
        .flatten()
        .collect();
    let mut narrow = gid_var.is_none_or(|var| {
        let ty = var_types.get(&var).and_then(|t| pointees.get(t));
        ty == Some(&(storage::INPUT, v3))
    });
    // From SPIR-V 1.4 every entry point lists the globals it uses: another entry point
    // using the built-ins would have to list the private variables too.
    let entry_points = insts.iter().filter(|i| i.op == op::ENTRY_POINT).count();
    narrow &= entry_points == 1 || words[1] < 0x0001_0400;
    // The pointee types of access chains into them, which become private pointers.
    let mut chained: Vec<u32> = Vec::new();
    for i in &insts {
        let rest = match i.op {
            op::ENTRY_POINT | code::NAME | op::DECORATE => continue,
            op::VARIABLE if redirect.contains(&i.at(1)) => continue,
            op::LOAD if redirect.contains(&i.at(2)) => &i.operands[3..],
            op::ACCESS_CHAIN | op::IN_BOUNDS_ACCESS_CHAIN if redirect.contains(&i.at(2)) => {
                match pointees.get(&i.at(0)) {
                    Some((storage::INPUT, elem)) if !chained.contains(elem) => chained.push(*elem),
                    Some((storage::INPUT, _)) => {}
                    _ => narrow = false,
                }
                &i.operands[3..]
            }
            _ => i.operands,
        };
        if rest.iter().any(|w| redirect.contains(w)) {
            narrow = false;
        }
    }
    let private_ptr = |pointee: u32| {
        pointees
            .iter()
            .filter(|(_, p)| **p == (PRIVATE, pointee))
            .map(|(id, _)| *id)
            .min()
    };
    // The workgroup size along x, where the global id is redirected: the `WorkgroupSize`
    // constant's, or the entry point's `LocalSize` or `LocalSizeId`.
    enum LocalX {
        Composite(u32),
        Scalar(u32),
    }
    let mut local = None;
    if narrow && gid_var.is_some() {
        local = match (
            builtins.get(&spirv::WORKGROUP_SIZE),
            local_x.get(&insts[entry_at].at(1)),
        ) {
            (Some(c), _) => Some(LocalX::Composite(*c)),
            (None, Some(Ok(x))) => {
                let id = fresh();
                globals.push(inst(op::CONSTANT, &[uint, id, *x]));
                Some(LocalX::Scalar(id))
            }
            (None, Some(Err(id))) => Some(LocalX::Scalar(*id)),
            (None, None) => None,
        };
        narrow &= local.is_some();
    }
    // Private pointer types (existing ones reused) and the private variables.
    let mut private_of: HashMap<u32, u32> = HashMap::new();
    let mut privates: Vec<(u32, u32)> = Vec::new();
    if narrow {
        for pointee in std::iter::once(v3).chain(chained.iter().copied()) {
            let id = private_ptr(pointee).unwrap_or_else(|| {
                let id = fresh();
                globals.push(inst(op::TYPE_POINTER, &[id, PRIVATE, pointee]));
                id
            });
            private_of.insert(pointee, id);
        }
        for var in &redirect {
            let id = fresh();
            globals.push(inst(op::VARIABLE, &[private_of[&v3], id, PRIVATE]));
            privates.push((*var, id));
        }
    }
    let mut ids = [0u32; 3];
    let mut next_id = FIRST_ID;
    let mut spec = [0u32; 3];
    for (k, default) in [0, PARTS, 0].into_iter().enumerate() {
        while spec_ids.contains(&next_id) {
            next_id += 1;
        }
        ids[k] = next_id;
        next_id += 1;
        spec[k] = fresh();
        globals.push(inst(code::SPEC_CONSTANT, &[uint, spec[k], default]));
        decorations.push(inst(op::DECORATE, &[spec[k], SPEC_ID, ids[k]]));
    }
    let (zero, one, parts) = (fresh(), fresh(), fresh());
    globals.push(inst(op::CONSTANT, &[uint, zero, 0]));
    globals.push(inst(op::CONSTANT, &[uint, one, 1]));
    globals.push(inst(op::CONSTANT, &[uint, parts, PARTS]));
    // The entry point's interface gains the built-ins it lacks.
    let ep = &insts[entry_at];
    let names = 2 + ep.string_words(2);
    let mut entry_point = ep.operands.to_vec();
    // SPIR-V 1.4 on lists every global variable the entry point uses, private ones too.
    let every_global = words[1] >= 0x0001_0400;
    let added = privates.iter().map(|p| p.1).filter(|_| every_global);
    for var in [wg_var, nwg_var].into_iter().chain(added) {
        if !ep.operands.iter().skip(names).any(|v| *v == var) {
            entry_point.push(var);
        }
    }
    // The test, in the new first block.
    let mut test: Vec<Vec<u32>> = Vec::new();
    let mut emit = |opcode: u16, ty: u32, operands: &[u32]| {
        let id = fresh();
        let mut all = vec![ty, id];
        all.extend_from_slice(operands);
        test.push(inst(opcode, &all));
        id
    };
    let wg = emit(op::LOAD, v3, &[wg_var]);
    let nwg = emit(op::LOAD, v3, &[nwg_var]);
    let g: Vec<u32> = (0..3)
        .map(|c| emit(op::COMPOSITE_EXTRACT, uint, &[wg, c]))
        .collect();
    let n: Vec<u32> = (0..3)
        .map(|c| emit(op::COMPOSITE_EXTRACT, uint, &[nwg, c]))
        .collect();
    let rows = emit(code::U_GREATER_THAN, boolean, &[n[1], one]);
    let layers = emit(code::U_GREATER_THAN, boolean, &[n[2], one]);
    let n_yx = emit(code::SELECT, uint, &[rows, n[1], n[0]]);
    let g_yx = emit(code::SELECT, uint, &[rows, g[1], g[0]]);
    let count = emit(code::SELECT, uint, &[layers, n[2], n_yx]);
    let group = emit(code::SELECT, uint, &[layers, g[2], g_yx]);
    let whole = emit(code::U_DIV, uint, &[count, parts]);
    let rest = emit(code::U_MOD, uint, &[count, parts]);
    // count * s / PARTS = whole * s + rest * s / PARTS, with rest * s < PARTS²: no overflow.
    let mut bound_at = |s: u32| {
        let a = emit(op::I_MUL, uint, &[whole, s]);
        let b = emit(op::I_MUL, uint, &[rest, s]);
        let c = emit(code::U_DIV, uint, &[b, parts]);
        emit(op::I_ADD, uint, &[a, c])
    };
    let (lo, hi) = (bound_at(spec[0]), bound_at(spec[1]));
    let from = emit(code::U_GREATER_THAN_EQUAL, boolean, &[group, lo]);
    let before = emit(code::U_LESS_THAN, boolean, &[group, hi]);
    let mut inside = emit(code::LOGICAL_AND, boolean, &[from, before]);
    let mut stores: Vec<Vec<u32>> = Vec::new();
    if narrow {
        // NARROW: the s-th workgroup along x stands for (s / w) * PARTS + LO + s % w, with
        // w = HI - LO (1 where empty: such a slice is not dispatched); otherwise itself.
        let is_narrow = emit(code::I_NOT_EQUAL, boolean, &[spec[2], zero]);
        let s = g[0];
        let w = emit(code::I_SUB, uint, &[spec[1], spec[0]]);
        let some = emit(code::U_GREATER_THAN, boolean, &[w, zero]);
        let w = emit(code::SELECT, uint, &[some, w, one]);
        let q = emit(code::U_DIV, uint, &[s, w]);
        let r = emit(code::U_MOD, uint, &[s, w]);
        let q = emit(op::I_MUL, uint, &[q, parts]);
        let q = emit(op::I_ADD, uint, &[q, spec[0]]);
        let group = emit(op::I_ADD, uint, &[q, r]);
        let delta = emit(code::I_SUB, uint, &[group, s]);
        let delta = emit(code::SELECT, uint, &[is_narrow, delta, zero]);
        let x = emit(op::I_ADD, uint, &[s, delta]);
        let wg_new = emit(code::COMPOSITE_INSERT, v3, &[x, wg, 0]);
        for (var, private) in &privates {
            let value = if *var == wg_var {
                wg_new
            } else {
                // The global id: its x moves by delta workgroups.
                let gid = emit(op::LOAD, v3, &[*var]);
                let lx = match local {
                    Some(LocalX::Composite(c)) => emit(op::COMPOSITE_EXTRACT, uint, &[c, 0]),
                    Some(LocalX::Scalar(id)) => id,
                    None => one,
                };
                let gx = emit(op::COMPOSITE_EXTRACT, uint, &[gid, 0]);
                let moved = emit(op::I_MUL, uint, &[delta, lx]);
                let gx = emit(op::I_ADD, uint, &[gx, moved]);
                emit(code::COMPOSITE_INSERT, v3, &[gx, gid, 0])
            };
            stores.push(inst(op::STORE, &[*private, value]));
        }
        inside = emit(code::LOGICAL_OR, boolean, &[is_narrow, inside]);
    }
    // The rewritten module.
    let preamble_end = insts
        .iter()
        .rposition(|i| code::PREAMBLE.contains(&i.op) || i.op == code::MEMBER_DECORATE_STRING)
        .map_or(0, |n| n + 1);
    let first_function = insts
        .iter()
        .position(|i| i.op == op::FUNCTION)
        .unwrap_or(insts.len());
    if first_function < preamble_end {
        return refuse("its sections are out of order");
    }
    let Some(start) = insts
        .iter()
        .position(|i| i.op == op::FUNCTION && i.at(1) == function)
    else {
        return refuse("its entry point's function is not defined");
    };
    let Some(label) = insts[start..]
        .iter()
        .position(|i| i.op == code::LABEL)
        .map(|p| start + p)
    else {
        return refuse("its entry point's function has no blocks");
    };
    // The first block's variables (and debug lines among them) move to the new first block.
    let moved = insts[label + 1..]
        .iter()
        .take_while(|i| matches!(i.op, op::VARIABLE | code::LINE | code::NO_LINE))
        .count();
    let body = label + 1 + moved;
    let block_end = insts[body..]
        .iter()
        .position(|i| matches!(i.op, code::LABEL | op::FUNCTION_END))
        .map_or(insts.len(), |p| body + p);
    if insts[body..block_end].iter().any(|i| i.op == op::VARIABLE) {
        return refuse("its entry block declares variables after other instructions");
    }
    let (new_first, ret) = (fresh(), fresh());
    let old_first = insts[label].at(0);
    let mut out: Vec<u32> = words[..5].to_vec();
    let mut put = |i: &spirv::Inst<'_>| out.extend(inst(i.op, i.operands));
    for (n, i) in insts.iter().enumerate() {
        if n == preamble_end {
            decorations.iter().for_each(|d| out_extend(&mut put, d));
        }
        if n == first_function {
            globals.iter().for_each(|d| out_extend(&mut put, d));
        }
        if n == entry_at {
            put(&spirv::Inst {
                op: i.op,
                operands: &entry_point,
            });
            continue;
        }
        if n == label {
            put(&spirv::Inst {
                op: code::LABEL,
                operands: &[new_first],
            });
            insts[label + 1..body].iter().for_each(&mut put);
            test.iter()
                .chain(&stores)
                .for_each(|d| out_extend(&mut put, d));
            put(&spirv::Inst {
                op: code::SELECTION_MERGE,
                operands: &[old_first, 0],
            });
            put(&spirv::Inst {
                op: code::BRANCH_CONDITIONAL,
                operands: &[inside, old_first, ret],
            });
            put(&spirv::Inst {
                op: code::LABEL,
                operands: &[ret],
            });
            put(&spirv::Inst {
                op: code::RETURN,
                operands: &[],
            });
            put(i);
            continue;
        }
        if (label + 1..body).contains(&n) {
            continue;
        }
        // Loads of and access chains into the redirected built-ins take the private
        // variables.
        let private = privates.iter().find(|p| p.0 == i.at(2)).map(|p| p.1);
        match (i.op, private) {
            (op::LOAD, Some(var)) => {
                let mut operands = i.operands.to_vec();
                operands[2] = var;
                put(&spirv::Inst {
                    op: i.op,
                    operands: &operands,
                });
                continue;
            }
            (op::ACCESS_CHAIN | op::IN_BOUNDS_ACCESS_CHAIN, Some(var)) => {
                let mut operands = i.operands.to_vec();
                operands[2] = var;
                if let Some(ty) = pointees.get(&i.at(0)).and_then(|p| private_of.get(&p.1)) {
                    operands[0] = *ty;
                }
                put(&spirv::Inst {
                    op: i.op,
                    operands: &operands,
                });
                continue;
            }
            _ => {}
        }
        put(i);
    }
    if first_function == insts.len() {
        globals.iter().for_each(|d| out_extend(&mut put, d));
    }
    out[3] = bound;
    Ok(Sliced {
        words: out,
        ids,
        narrow,
    })
}

/// Words per slot of [`narrow_args`]'s buffer: the group counts copied in (`0..3`), then
/// the narrowed dispatch's (`4..7`).
pub const NARROW_SLOT_WORDS: u32 = 8;

/// A compute module (SPIR-V 1.0, entry point `main`, one invocation) that writes a narrowed
/// dispatch's group counts: set 0, binding 0 is a storage buffer of 32-bit words; push
/// constants `at`, `lo` and `hi` (three 32-bit words). From the counts at words
/// `at..at + 3` it writes at `at + 4..at + 7` the same counts with x narrowed to slice
/// `lo..hi` ([`narrowed_count`]).
pub fn narrow_args() -> Vec<u32> {
    use spirv::op::{CAPABILITY, FUNCTION_END, MEMORY_MODEL};
    const TYPE_VOID: u16 = 19;
    const TYPE_FUNCTION: u16 = 33;
    const BLOCK: u32 = 2;
    let mut next = 1;
    let mut id = || {
        let i = next;
        next += 1;
        i
    };
    let (void, fn_ty, uint, boolean, words_ty, buffer_ty, buffer_ptr, buffer) =
        (id(), id(), id(), id(), id(), id(), id(), id());
    let (push_ty, push_ptr, push, push_uint, buffer_uint, main, label) =
        (id(), id(), id(), id(), id(), id(), id());
    let c: Vec<u32> = (0..8).map(|_| id()).collect();
    let parts = id();
    let mut m: Vec<Vec<u32>> = vec![inst(CAPABILITY, &[1]), inst(MEMORY_MODEL, &[0, 1])];
    let mut ep = vec![spirv::GL_COMPUTE, main];
    ep.extend(spirv::literal("main"));
    m.push(inst(op::ENTRY_POINT, &ep));
    m.push(inst(
        op::EXECUTION_MODE,
        &[main, spirv::LOCAL_SIZE, 1, 1, 1],
    ));
    m.push(inst(op::DECORATE, &[words_ty, decoration::ARRAY_STRIDE, 4]));
    m.push(inst(
        op::MEMBER_DECORATE,
        &[buffer_ty, 0, decoration::OFFSET, 0],
    ));
    m.push(inst(op::DECORATE, &[buffer_ty, decoration::BUFFER_BLOCK]));
    m.push(inst(op::DECORATE, &[buffer, decoration::DESCRIPTOR_SET, 0]));
    m.push(inst(op::DECORATE, &[buffer, decoration::BINDING, 0]));
    for k in 0..3 {
        m.push(inst(
            op::MEMBER_DECORATE,
            &[push_ty, k, decoration::OFFSET, 4 * k],
        ));
    }
    m.push(inst(op::DECORATE, &[push_ty, BLOCK]));
    m.push(inst(TYPE_VOID, &[void]));
    m.push(inst(TYPE_FUNCTION, &[fn_ty, void]));
    m.push(inst(op::TYPE_INT, &[uint, 32, 0]));
    m.push(inst(code::TYPE_BOOL, &[boolean]));
    m.push(inst(op::TYPE_RUNTIME_ARRAY, &[words_ty, uint]));
    m.push(inst(op::TYPE_STRUCT, &[buffer_ty, words_ty]));
    m.push(inst(
        op::TYPE_POINTER,
        &[buffer_ptr, storage::UNIFORM, buffer_ty],
    ));
    m.push(inst(op::TYPE_STRUCT, &[push_ty, uint, uint, uint]));
    m.push(inst(
        op::TYPE_POINTER,
        &[push_ptr, storage::PUSH_CONSTANT, push_ty],
    ));
    m.push(inst(
        op::TYPE_POINTER,
        &[push_uint, storage::PUSH_CONSTANT, uint],
    ));
    m.push(inst(
        op::TYPE_POINTER,
        &[buffer_uint, storage::UNIFORM, uint],
    ));
    for (k, id) in c.iter().enumerate() {
        m.push(inst(op::CONSTANT, &[uint, *id, k as u32]));
    }
    m.push(inst(op::CONSTANT, &[uint, parts, PARTS]));
    m.push(inst(op::VARIABLE, &[buffer_ptr, buffer, storage::UNIFORM]));
    m.push(inst(
        op::VARIABLE,
        &[push_ptr, push, storage::PUSH_CONSTANT],
    ));
    m.push(inst(op::FUNCTION, &[void, main, 0, fn_ty]));
    m.push(inst(code::LABEL, &[label]));
    let mut emit = |opcode: u16, ty: u32, operands: &[u32]| {
        let r = id();
        let mut all = vec![ty, r];
        all.extend_from_slice(operands);
        m.push(inst(opcode, &all));
        r
    };
    let mut pushed = |k: usize| {
        let p = emit(op::ACCESS_CHAIN, push_uint, &[push, c[k]]);
        emit(op::LOAD, uint, &[p])
    };
    let (at, lo, hi) = (pushed(0), pushed(1), pushed(2));
    let word = |emit: &mut dyn FnMut(u16, u32, &[u32]) -> u32, k: usize| {
        let index = emit(op::I_ADD, uint, &[at, c[k]]);
        emit(op::ACCESS_CHAIN, buffer_uint, &[buffer, c[0], index])
    };
    let p = word(&mut emit, 0);
    let n = emit(op::LOAD, uint, &[p]);
    // (n / PARTS) * w + min(max(n % PARTS - lo, 0), w), w = hi - lo.
    let w = emit(code::I_SUB, uint, &[hi, lo]);
    let r = emit(code::U_MOD, uint, &[n, parts]);
    let past = emit(code::U_GREATER_THAN, boolean, &[r, lo]);
    let d = emit(code::I_SUB, uint, &[r, lo]);
    let under = emit(code::U_LESS_THAN, boolean, &[d, w]);
    let d = emit(code::SELECT, uint, &[under, d, w]);
    let rest = emit(code::SELECT, uint, &[past, d, c[0]]);
    let q = emit(code::U_DIV, uint, &[n, parts]);
    let q = emit(op::I_MUL, uint, &[q, w]);
    let x = emit(op::I_ADD, uint, &[q, rest]);
    let mut stores = Vec::new();
    let out = word(&mut emit, 4);
    stores.push(inst(op::STORE, &[out, x]));
    for k in 1..3 {
        let from = word(&mut emit, k);
        let v = emit(op::LOAD, uint, &[from]);
        let to = word(&mut emit, k + 4);
        stores.push(inst(op::STORE, &[to, v]));
    }
    m.extend(stores);
    m.push(inst(code::RETURN, &[]));
    m.push(inst(FUNCTION_END, &[]));
    let mut words = vec![spirv::MAGIC, 0x0001_0000, 0, next, 0];
    words.extend(m.into_iter().flatten());
    words
}

/// Puts a built instruction (its words, the first the count and opcode) through `put`.
fn out_extend(put: &mut impl FnMut(&spirv::Inst<'_>), words: &[u32]) {
    put(&spirv::Inst {
        op: (words[0] & 0xffff) as u16,
        operands: &words[1..],
    });
}

/// What [`marked_for_dispatch_base`] adds to a module.
pub const DISPATCH_BASE_MARK: &str = "vkfuse: compiled for vkCmdDispatchBase";

/// `words` with an `OpSourceExtension` naming [`DISPATCH_BASE_MARK`] at the head of its debug
/// instructions, for modules whose pipelines are created with `DISPATCH_BASE`; `None` where
/// `words` is not a module.
///
/// The NVIDIA driver (580) keys its shader disk cache on the module, not on that flag: a
/// pipeline with `DISPATCH_BASE` whose module was compiled without it before (the same program
/// run directly, an earlier run) got the cached code, which ignores the base, so every slice
/// wrote the first slice's elements. The mark gives such modules a key of their own.
pub fn marked_for_dispatch_base(words: &[u32]) -> Option<Vec<u32>> {
    let insts = spirv::instructions(words).ok()?;
    // Capabilities, extensions, imports, the memory model, entry points and execution modes
    // come before the debug instructions.
    let head: usize = insts
        .iter()
        .take_while(|i| {
            matches!(
                i.op,
                spirv::op::CAPABILITY
                    | spirv::op::EXTENSION
                    | spirv::op::EXT_INST_IMPORT
                    | spirv::op::MEMORY_MODEL
                    | spirv::op::ENTRY_POINT
                    | spirv::op::EXECUTION_MODE
                    | spirv::op::EXECUTION_MODE_ID
            )
        })
        .map(|i| i.operands.len() + 1)
        .sum();
    let mark = inst(
        spirv::op::SOURCE_EXTENSION,
        &spirv::literal(DISPATCH_BASE_MARK),
    );
    Some([&words[..5 + head], &mark, &words[5 + head..]].concat())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{compile, env_of};

    /// Runs `spirv-val` (Debian: spirv-tools) on `words` for `env`.
    fn validate(name: &str, words: &[u32], env: &str) {
        let dir = std::env::temp_dir().join(format!("vkfuse-slice-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.spv"));
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        std::fs::write(&path, bytes).unwrap();
        let val = std::env::var_os("SPIRV_VAL").unwrap_or_else(|| "spirv-val".into());
        let out = std::process::Command::new(&val)
            .args(["--target-env", env])
            .arg(&path)
            .output()
            .unwrap_or_else(|e| panic!("{val:?}: {e} (Debian: apt-get install spirv-tools)"));
        assert!(
            out.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn sliced(name: &str, source: &str) -> (Vec<u32>, Sliced) {
        let words = compile(name, source);
        let s = workgroup_slice(&words, "main").unwrap_or_else(|e| panic!("{name}: {e}"));
        validate(name, &s.words, env_of(source));
        (words, s)
    }

    /// The decorations of `id`s: (target, decoration, value) of each `OpDecorate`.
    fn decorations(words: &[u32]) -> Vec<(u32, u32, u32)> {
        spirv::instructions(words)
            .unwrap()
            .iter()
            .filter(|i| i.op == op::DECORATE && i.operands.len() >= 3)
            .map(|i| (i.at(0), i.at(1), i.at(2)))
            .collect()
    }

    /// The analysis tests' saxpy, whole.
    fn saxpy() -> String {
        format!(
            "#version 450\nlayout(local_size_x = 64) in;\n{}",
            crate::tests::SAXPY
        )
    }

    /// Asserts that the workgroup built-ins are declared once each in `words`.
    fn builtins_once(words: &[u32]) {
        let d = decorations(words);
        for b in [WORKGROUP_ID, spirv::NUM_WORKGROUPS] {
            let n = d
                .iter()
                .filter(|x| x.1 == decoration::BUILT_IN && x.2 == b)
                .count();
            assert_eq!(n, 1, "built-in {b}");
        }
    }

    /// Shared memory, a barrier, local variables, a loop first thing, and the workgroup
    /// built-ins the rewrite reads.
    const TILED: &str = "#version 450
        // target: vulkan1.3
        layout(local_size_x = 8, local_size_y = 8) in;
        layout(set = 0, binding = 0) buffer B { uint b[]; };
        shared uint tile[64];
        void main() {
            uint sum = 0;
            for (uint k = 0; k < gl_NumWorkGroups.x; k++) sum += k;
            tile[gl_LocalInvocationIndex] = gl_WorkGroupID.y * gl_NumWorkGroups.x + sum;
            barrier();
            b[gl_GlobalInvocationID.y * 64 + gl_GlobalInvocationID.x] =
                tile[63 - gl_LocalInvocationIndex];
        }";

    #[test]
    fn rewritten_modules_validate() {
        let (before, s) = sliced("saxpy-slice", &saxpy());
        assert!(s.words.len() > before.len());
        // The built-ins are declared once each, the specialization constants named.
        builtins_once(&s.words);
        let d = decorations(&s.words);
        for id in s.ids {
            assert!(d.iter().any(|x| x.1 == SPEC_ID && x.2 == id));
        }
        // The rewritten module reads and writes what the original did, and reads
        // gl_NumWorkGroups. (The invocation id facts are lost: the ids are private
        // variables now.)
        let same = |before: &[u32], after: &[u32]| {
            let (a, b) = (
                crate::analyse(after, "main").unwrap(),
                crate::analyse(before, "main").unwrap(),
            );
            let kinds = |a: &crate::Analysis| -> Vec<_> {
                a.bindings
                    .iter()
                    .map(|(k, b)| (*k, b.read, b.written, b.atomics, b.opaque))
                    .collect()
            };
            assert_eq!((kinds(&a), a.addresses), (kinds(&b), b.addresses));
            assert_eq!(a.num_workgroups, 0b111);
        };
        same(&before, &s.words);
        assert!(s.narrow);
        // Built-ins the module declares are reused, in SPIR-V 1.6 too (every global the
        // entry point uses in its interface).
        let (before, s) = sliced("tiled-slice", TILED);
        builtins_once(&s.words);
        same(&before, &s.words);
        assert!(s.narrow);
        // The workgroup size from a specialization constant (`WorkgroupSize`), the global id
        // through an access chain and loaded whole.
        let source = "#version 450
            layout(local_size_x_id = 0) in;
            layout(set = 0, binding = 0) buffer B { uint b[]; };
            void main() {
                uvec3 g = gl_GlobalInvocationID;
                b[gl_GlobalInvocationID.x] = g.y + gl_WorkGroupID.x;
            }";
        let (before, s) = sliced("sized-slice", source);
        same(&before, &s.words);
        assert!(s.narrow);
        // Without any workgroup built-in: nothing to redirect, and narrowing is allowed.
        let source = "#version 450
            layout(local_size_x = 4) in;
            layout(set = 0, binding = 0) buffer B { uint b[]; };
            void main() { b[gl_LocalInvocationIndex] = 1u; }";
        let (_, s) = sliced("local-slice", source);
        assert!(s.narrow);
    }

    #[test]
    fn modules_marked_for_dispatch_base_validate_and_analyse_alike() {
        let source = saxpy();
        let words = compile("marked", &source);
        let marked = marked_for_dispatch_base(&words).unwrap_or_else(|| panic!("not a module"));
        validate("marked", &marked, env_of(&source));
        assert_ne!(marked, words);
        assert_eq!(
            crate::analyse(&marked, "main").map(|a| a.bindings),
            crate::analyse(&words, "main").map(|a| a.bindings)
        );
        // The narrowing module: SPIR-V 1.0, no debug instructions.
        let n = marked_for_dispatch_base(&narrow_args()).unwrap_or_else(|| panic!("not a module"));
        validate("marked-narrow-args", &n, "vulkan1.0");
        assert_eq!(marked_for_dispatch_base(&[1, 2, 3]), None);
    }

    #[test]
    fn the_narrowing_module_validates() {
        let words = narrow_args();
        validate("narrow-args", &words, "vulkan1.0");
        let a = crate::analyse(&words, "main").unwrap_or_else(|e| panic!("{e}"));
        let b = &a.bindings[&(0, 0)];
        assert!(b.read && b.written);
    }

    #[test]
    fn narrowed_slices_tile_the_grid() {
        let tilings: [&[(u32, u32)]; 4] = [
            &[(0, 16)],
            &[(0, 8), (8, 16)],
            &[(0, 3), (3, 3), (3, 11), (11, 16)],
            &[(0, 1), (1, 15), (15, 16)],
        ];
        for n in [0, 1, 5, 15, 16, 17, 31, 100, 1024] {
            for tiling in tilings {
                let mut seen = vec![0u32; n as usize];
                for slice in tiling {
                    let count = narrowed_count(n, *slice);
                    let mut last = None;
                    for s in 0..count {
                        let g = narrowed_group(s, *slice);
                        assert!(g < n, "n {n} slice {slice:?}: group {g}");
                        assert!(last.is_none_or(|l| l < g), "in order");
                        last = Some(g);
                        seen[g as usize] += 1;
                    }
                }
                assert!(seen.iter().all(|c| *c == 1), "n {n} {tiling:?}: {seen:?}");
            }
        }
    }

    #[test]
    fn specialization_ids_of_the_module_are_kept_clear() {
        // glslang takes ids below 2047 only: the module's ids 1 and 3 are moved onto the
        // rewrite's first two candidates.
        let source = "#version 450
            layout(local_size_x = 64) in;
            layout(constant_id = 1) const uint K = 3;
            layout(constant_id = 3) const uint L = 4;
            layout(set = 0, binding = 0) buffer B { uint b[]; };
            void main() { b[gl_GlobalInvocationID.x] = K + L; }";
        let mut words = compile("spec-slice", source);
        let mut at = 5;
        while at < words.len() {
            let (count, opcode) = ((words[at] >> 16) as usize, words[at] & 0xffff);
            if opcode == u32::from(op::DECORATE) && words[at + 2] == SPEC_ID {
                words[at + 3] += FIRST_ID - 1;
            }
            at += count;
        }
        let s = workgroup_slice(&words, "main").unwrap();
        validate("spec-slice", &s.words, "vulkan1.1");
        assert_eq!(s.ids, [FIRST_ID + 1, FIRST_ID + 3, FIRST_ID + 4]);
    }

    #[test]
    fn modules_not_rewritten() {
        let words = compile("saxpy-slice-entry", &saxpy());
        assert_eq!(
            workgroup_slice(&words, "other"),
            Err(Error::NoEntryPoint("other".into()))
        );
        assert!(matches!(
            workgroup_slice(&words[..4], "main"),
            Err(Error::Parse(_))
        ));
        // No room for new ids below the bound.
        let mut full = words.clone();
        full[3] = u32::MAX;
        assert_eq!(
            workgroup_slice(&full, "main"),
            Err(Error::Rewrite("its id bound leaves no room for new ids"))
        );
        // A signed WorkgroupId variable: hand-edited from the compiled module (the type of
        // the built-in's pointer made a new signed vector).
        let (_, s) = sliced("tiled-slice-signed", TILED);
        let insts = spirv::instructions(&s.words).unwrap();
        let var = insts
            .iter()
            .find(|i| i.op == op::DECORATE && i.at(1) == decoration::BUILT_IN && i.at(2) == 26)
            .map(|i| i.at(0))
            .unwrap();
        let bound = s.words[3];
        let mut edited: Vec<u32> = s.words[..5].to_vec();
        edited[3] = bound + 3;
        let mut signed_added = false;
        for i in &insts {
            if i.op == op::FUNCTION && !signed_added {
                signed_added = true;
                edited.extend(inst(op::TYPE_INT, &[bound, 32, 1]));
                edited.extend(inst(code::TYPE_VECTOR, &[bound + 1, bound, 3]));
                edited.extend(inst(
                    op::TYPE_POINTER,
                    &[bound + 2, storage::INPUT, bound + 1],
                ));
            }
            if i.op == op::VARIABLE && i.at(1) == var {
                edited.extend(inst(op::VARIABLE, &[bound + 2, var, storage::INPUT]));
                continue;
            }
            edited.extend(inst(i.op, i.operands));
        }
        assert_eq!(
            workgroup_slice(&edited, "main"),
            Err(Error::Rewrite(
                "it declares a workgroup built-in of another type"
            ))
        );
    }
}

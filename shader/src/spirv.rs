//! A SPIR-V module as words: the header checked, the instructions split. Only what the
//! analysis reads is named here (opcodes, decorations, storage classes and built-ins of the
//! SPIR-V 1.6 specification); every other instruction is kept as opcode and operands.

/// The SPIR-V magic number, first word of a module.
pub const MAGIC: u32 = 0x0723_0203;

/// One instruction: its opcode and operand words (the word count left out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inst<'a> {
    pub op: u16,
    pub operands: &'a [u32],
}

impl Inst<'_> {
    /// Operand `i`, or 0 past the end (a malformed instruction then analyses as unknown ids).
    pub fn at(&self, i: usize) -> u32 {
        self.operands.get(i).copied().unwrap_or(0)
    }

    /// A literal string starting at operand `i` (nul-terminated, little-endian bytes).
    pub fn string(&self, i: usize) -> String {
        let mut bytes = Vec::new();
        for w in self.operands.iter().skip(i) {
            for b in w.to_le_bytes() {
                if b == 0 {
                    return String::from_utf8_lossy(&bytes).into_owned();
                }
                bytes.push(b);
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The number of operand words a literal string starting at operand `i` takes.
    pub fn string_words(&self, i: usize) -> usize {
        self.operands
            .iter()
            .skip(i)
            .position(|w| w.to_le_bytes().contains(&0))
            .map_or(self.operands.len().saturating_sub(i), |p| p + 1)
    }
}

/// The operand words of literal string `s`: its bytes, nul-terminated, padded with zeros to
/// whole little-endian words (what [`Inst::string`] reads).
pub fn literal(s: &str) -> Vec<u32> {
    let mut bytes: Vec<u8> = s.bytes().collect();
    bytes.resize((bytes.len() / 4 + 1) * 4, 0);
    bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Why words are not a SPIR-V module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Fewer than the five header words, or the wrong magic number (either byte order).
    NotSpirv,
    /// An instruction with a word count of 0 or past the end, at this word.
    BadInstruction(usize),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::NotSpirv => f.write_str("not a SPIR-V module"),
            ParseError::BadInstruction(at) => write!(f, "a malformed instruction at word {at}"),
        }
    }
}

impl std::error::Error for ParseError {}

/// The instructions of `words` (a module in the host's byte order, as Vulkan takes it).
pub fn instructions(words: &[u32]) -> Result<Vec<Inst<'_>>, ParseError> {
    if words.len() < 5 || words[0] != MAGIC {
        return Err(ParseError::NotSpirv);
    }
    let mut out = Vec::new();
    let mut at = 5;
    while at < words.len() {
        let count = (words[at] >> 16) as usize;
        if count == 0 || at + count > words.len() {
            return Err(ParseError::BadInstruction(at));
        }
        out.push(Inst {
            op: (words[at] & 0xffff) as u16,
            operands: &words[at + 1..at + count],
        });
        at += count;
    }
    Ok(out)
}

/// Opcodes the analysis reads.
pub mod op {
    pub const SOURCE_EXTENSION: u16 = 4;
    pub const EXTENSION: u16 = 10;
    pub const EXT_INST_IMPORT: u16 = 11;
    pub const MEMORY_MODEL: u16 = 14;
    pub const ENTRY_POINT: u16 = 15;
    pub const EXECUTION_MODE: u16 = 16;
    pub const CAPABILITY: u16 = 17;
    pub const EXECUTION_MODE_ID: u16 = 331;
    pub const TYPE_INT: u16 = 21;
    pub const TYPE_ARRAY: u16 = 28;
    pub const TYPE_RUNTIME_ARRAY: u16 = 29;
    pub const TYPE_STRUCT: u16 = 30;
    pub const TYPE_POINTER: u16 = 32;
    pub const CONSTANT: u16 = 43;
    pub const CONSTANT_COMPOSITE: u16 = 44;
    pub const FUNCTION: u16 = 54;
    pub const FUNCTION_PARAMETER: u16 = 55;
    pub const FUNCTION_END: u16 = 56;
    pub const FUNCTION_CALL: u16 = 57;
    pub const VARIABLE: u16 = 59;
    pub const IMAGE_TEXEL_POINTER: u16 = 60;
    pub const LOAD: u16 = 61;
    pub const STORE: u16 = 62;
    pub const COPY_MEMORY: u16 = 63;
    pub const COPY_MEMORY_SIZED: u16 = 64;
    pub const ACCESS_CHAIN: u16 = 65;
    pub const IN_BOUNDS_ACCESS_CHAIN: u16 = 66;
    pub const PTR_ACCESS_CHAIN: u16 = 67;
    pub const IN_BOUNDS_PTR_ACCESS_CHAIN: u16 = 70;
    pub const DECORATE: u16 = 71;
    pub const MEMBER_DECORATE: u16 = 72;
    pub const VECTOR_SHUFFLE: u16 = 79;
    pub const COMPOSITE_CONSTRUCT: u16 = 80;
    pub const COMPOSITE_EXTRACT: u16 = 81;
    pub const COPY_OBJECT: u16 = 83;
    pub const SAMPLED_IMAGE: u16 = 86;
    pub const IMAGE_READ: u16 = 98;
    pub const IMAGE_WRITE: u16 = 99;
    pub const IMAGE: u16 = 100;
    pub const U_CONVERT: u16 = 113;
    pub const S_CONVERT: u16 = 114;
    pub const BITCAST: u16 = 124;
    pub const I_ADD: u16 = 128;
    pub const I_MUL: u16 = 132;
    pub const ATOMIC_LOAD: u16 = 227;
    pub const ATOMIC_STORE: u16 = 228;
    /// OpAtomicExchange; the atomics up to OpAtomicXor (242) follow.
    pub const ATOMIC_EXCHANGE: u16 = 229;
    pub const ATOMIC_I_INCREMENT: u16 = 232;
    pub const ATOMIC_I_DECREMENT: u16 = 233;
    pub const ATOMIC_I_ADD: u16 = 234;
    pub const ATOMIC_I_SUB: u16 = 235;
    pub const ATOMIC_XOR: u16 = 242;
    pub const ATOMIC_FLAG_TEST_AND_SET: u16 = 318;
    pub const ATOMIC_FLAG_CLEAR: u16 = 319;
    pub const ATOMIC_F_MIN_EXT: u16 = 5614;
    pub const ATOMIC_F_MAX_EXT: u16 = 5615;
    pub const ATOMIC_F_ADD_EXT: u16 = 6035;
}

/// Decorations the analysis reads.
pub mod decoration {
    pub const BUFFER_BLOCK: u32 = 3;
    pub const ARRAY_STRIDE: u32 = 6;
    pub const BUILT_IN: u32 = 11;
    pub const NON_WRITABLE: u32 = 24;
    pub const BINDING: u32 = 33;
    pub const DESCRIPTOR_SET: u32 = 34;
    pub const OFFSET: u32 = 35;
}

/// Storage classes the analysis reads.
pub mod storage {
    pub const UNIFORM_CONSTANT: u32 = 0;
    pub const INPUT: u32 = 1;
    pub const UNIFORM: u32 = 2;
    pub const PUSH_CONSTANT: u32 = 9;
    pub const STORAGE_BUFFER: u32 = 12;
    pub const PHYSICAL_STORAGE_BUFFER: u32 = 5349;
}

/// `BuiltIn GlobalInvocationId`.
pub const GLOBAL_INVOCATION_ID: u32 = 28;
/// `BuiltIn WorkgroupSize`.
pub const WORKGROUP_SIZE: u32 = 25;
/// `BuiltIn NumWorkgroups`.
pub const NUM_WORKGROUPS: u32 = 24;
/// `ExecutionModel GLCompute`.
pub const GL_COMPUTE: u32 = 5;
/// `ExecutionMode LocalSize`.
pub const LOCAL_SIZE: u32 = 17;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_split_and_malformed_modules_are_refused() {
        // Header, then OpCapability Shader (2 words) and OpMemoryModel (3 words).
        let words = [
            MAGIC,
            0x0001_0000,
            0,
            10,
            0,
            (2 << 16) | 17,
            1,
            (3 << 16) | 14,
            0,
            1,
        ];
        let insts = instructions(&words).unwrap();
        assert_eq!(insts.len(), 2);
        assert_eq!(
            insts[0],
            Inst {
                op: 17,
                operands: &[1]
            }
        );
        assert_eq!(insts[1].at(1), 1);
        assert_eq!(insts[1].at(7), 0);
        assert_eq!(instructions(&words[..4]), Err(ParseError::NotSpirv));
        let mut bad = words;
        bad[7] = 9 << 16 | 14;
        assert_eq!(instructions(&bad), Err(ParseError::BadInstruction(7)));
        bad[7] = 14;
        assert_eq!(instructions(&bad), Err(ParseError::BadInstruction(7)));
    }

    #[test]
    fn strings_are_nul_terminated_little_endian() {
        // "main" then a nul word, then a following operand.
        let ops = [u32::from_le_bytes(*b"main"), 0, 7];
        let i = Inst {
            op: 15,
            operands: &ops,
        };
        assert_eq!(i.string(0), "main");
        assert_eq!(i.string_words(0), 2);
        assert_eq!(i.at(2), 7);
    }
}

//! Murmur3 partitioner tokens: partitions are kept and scanned in token order, as Cassandra
//! returns them.

use bytes::{BufMut, Bytes, BytesMut};

fn fmix(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// Cassandra's variant of MurmurHash3 x64 128 (it sign-extends tail bytes) with seed 0; the
/// token is the first 64-bit half.
pub fn murmur3_token(data: &[u8]) -> i64 {
    const C1: u64 = 0x87c3_7b91_1142_53d5;
    const C2: u64 = 0x4cf5_ad43_2745_937f;
    let (mut h1, mut h2) = (0u64, 0u64);
    let blocks = data.len() / 16;
    for i in 0..blocks {
        let b = &data[i * 16..i * 16 + 16];
        let mut k1 = u64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8]));
        let mut k2 = u64::from_le_bytes(b[8..].try_into().unwrap_or([0; 8]));
        k1 = k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        h1 ^= k1;
        h1 = h1
            .rotate_left(27)
            .wrapping_add(h2)
            .wrapping_mul(5)
            .wrapping_add(0x52dc_e729);
        k2 = k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
        h2 ^= k2;
        h2 = h2
            .rotate_left(31)
            .wrapping_add(h1)
            .wrapping_mul(5)
            .wrapping_add(0x3849_5ab5);
    }
    let tail = &data[blocks * 16..];
    let (mut k1, mut k2) = (0u64, 0u64);
    for (i, &b) in tail.iter().enumerate() {
        let v = (b as i8) as i64 as u64;
        if i < 8 {
            k1 ^= v << (8 * i);
        } else {
            k2 ^= v << (8 * (i - 8));
        }
    }
    if tail.len() > 8 {
        k2 = k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
        h2 ^= k2;
    }
    if !tail.is_empty() {
        k1 = k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        h1 ^= k1;
    }
    h1 ^= data.len() as u64;
    h2 ^= data.len() as u64;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix(h1);
    h2 = fmix(h2);
    h1 = h1.wrapping_add(h2);
    let token = h1 as i64;
    // Long.MIN_VALUE is reserved as the minimum token.
    if token == i64::MIN {
        i64::MAX
    } else {
        token
    }
}

/// The partition key as one blob: the value itself, or for a compound key each component as
/// `[u16 length][bytes][0]`.
pub fn serialize_partition_key(values: &[Bytes]) -> Bytes {
    if let [single] = values {
        return single.clone();
    }
    let mut buf = BytesMut::new();
    for v in values {
        buf.put_u16(v.len() as u16);
        buf.put_slice(v);
        buf.put_u8(0);
    }
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::murmur3_token;

    #[test]
    fn matches_cassandra_tokens() {
        // Tokens Cassandra reports for int keys 1 and 2 (`SELECT token(k)`).
        assert_eq!(murmur3_token(&1i32.to_be_bytes()), -4069959284402364209);
        assert_eq!(murmur3_token(&2i32.to_be_bytes()), -3248873570005575792);
    }
}

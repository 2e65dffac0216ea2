//! PKCS#11 wrap/unwrap throughput on SoftHSM2: through `Pkcs11Kek` (session
//! pool, blocking thread, error mapping) against the same PKCS#11 calls
//! made directly with `cryptoki` on one session, in the same run.
//!
//! Run: `cargo bench --features pkcs11 --bench pkcs11` (add `-- --quick`
//! for a short run). Needs SoftHSM2 (`apt-get install softhsm2`) or
//! PKCS11_MODULE; the bench creates its own token in a temporary directory.
//! After the criterion groups it prints the pool/direct ops/s ratios.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cmk_envelope::kek::pkcs11::Pkcs11Path;
use cmk_envelope::{CryptoProvider, DataKey, KeyEncryptionKey, Pkcs11Kek, WrapAlgorithm};
use criterion::{Criterion, Throughput};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;

const LABEL: &str = "bench-aes";
const PIN: &str = "1234";

struct Setup {
    module: PathBuf,
    session: Session,
    /// Keeps the login alive (it ends when the process's last session on
    /// the token closes).
    _admin: Session,
    key: ObjectHandle,
}

fn setup() -> Setup {
    let module = std::env::var_os("PKCS11_MODULE")
        .map(PathBuf::from)
        .or_else(|| {
            [
                "/usr/lib/softhsm/libsofthsm2.so",
                "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
            ]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
        })
        .expect("libsofthsm2.so not found: apt-get install softhsm2, or set PKCS11_MODULE");
    let dir = std::env::temp_dir().join(format!("cmk-bench-pkcs11-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("tokens")).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            dir.join("tokens").display()
        ),
    )
    .unwrap();
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let out = std::process::Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            "kek-bench",
            "--so-pin",
            "5678",
            "--pin",
            PIN,
        ])
        .output()
        .expect("softhsm2-util (apt-get install softhsm2)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let ctx = Pkcs11::new(&module).expect("load the PKCS#11 module");
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => panic!("C_Initialize: {e}"),
    }
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| {
            ctx.get_token_info(*s)
                .map(|t| t.label() == "kek-bench")
                .unwrap_or(false)
        })
        .unwrap();
    let admin = ctx.open_rw_session(slot).unwrap();
    admin
        .login(UserType::User, Some(&AuthPin::from(PIN)))
        .unwrap();
    let key = admin
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::ValueLen(32.into()),
                Attribute::Label(LABEL.as_bytes().to_vec()),
                Attribute::Wrap(true),
                Attribute::Unwrap(true),
            ],
        )
        .unwrap();
    // The direct calls use a read-only session, as the pool does (the
    // read-write one stays open, so the login persists).
    let session = ctx.open_ro_session(slot).unwrap();
    Setup {
        module,
        session,
        _admin: admin,
        key,
    }
}

fn transient(readable: bool) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Sensitive(!readable),
        Attribute::Extractable(true),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Sign(false),
        Attribute::Verify(false),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
    ]
}

/// The calls `Pkcs11Kek` makes for an A256KW wrap on SoftHSM2
/// (key-object path), on one session, no pool.
fn direct_wrap(s: &Session, key: ObjectHandle, dek: &[u8; 32]) -> Vec<u8> {
    let mut t = transient(false);
    t.push(Attribute::Value(dek.to_vec()));
    let obj = s.create_object(&t).unwrap();
    let w = s.wrap_key(&Mechanism::AesKeyWrap, key, obj).unwrap();
    s.destroy_object(obj).unwrap();
    w
}

fn direct_unwrap(s: &Session, key: ObjectHandle, wrapped: &[u8]) -> Vec<u8> {
    let obj = s
        .unwrap_key(&Mechanism::AesKeyWrap, key, wrapped, &transient(true))
        .unwrap();
    let v = s.get_attributes(obj, &[AttributeType::Value]).unwrap();
    s.destroy_object(obj).unwrap();
    match v.into_iter().next() {
        Some(Attribute::Value(v)) => v,
        _ => panic!("no value"),
    }
}

struct Fixture {
    setup: Setup,
    kek: Pkcs11Kek,
    rt: tokio::runtime::Runtime,
    dek: DataKey,
    wrapped: Vec<u8>,
}

fn fixture() -> Fixture {
    let setup = setup();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let kek = Pkcs11Kek::builder(format!(
        "pkcs11:token=kek-bench;object={LABEL};type=secret-key"
    ))
    .module(&setup.module)
    .pin(PIN)
    .algorithm(WrapAlgorithm::A256Kw)
    .build()
    .unwrap();
    assert_eq!(kek.wrap_path(), Some(Pkcs11Path::KeyObject));
    let dek = DataKey::generate(CryptoProvider::default_provider()).unwrap();
    let wrapped = rt.block_on(kek.wrap_key(&dek)).unwrap().wrapped;
    // Both paths agree byte for byte.
    assert_eq!(
        direct_wrap(&setup.session, setup.key, dek.expose_secret_bytes()),
        wrapped
    );
    Fixture {
        setup,
        kek,
        rt,
        dek,
        wrapped,
    }
}

fn bench(c: &mut Criterion, f: &Fixture) {
    let mut g = c.benchmark_group("pkcs11-a256kw-softhsm2");
    g.throughput(Throughput::Elements(1));
    g.bench_function("wrap/pool", |b| {
        b.iter(|| f.rt.block_on(f.kek.wrap_key(&f.dek)).unwrap())
    });
    g.bench_function("wrap/direct", |b| {
        b.iter(|| direct_wrap(&f.setup.session, f.setup.key, f.dek.expose_secret_bytes()))
    });
    g.bench_function("unwrap/pool", |b| {
        b.iter(|| f.rt.block_on(f.kek.unwrap_key(&f.wrapped)).unwrap())
    });
    g.bench_function("unwrap/direct", |b| {
        b.iter(|| direct_unwrap(&f.setup.session, f.setup.key, &f.wrapped))
    });
    g.finish();
}

/// Process CPU time (user + system) from /proc/self/stat, assuming the
/// usual 100 ticks per second; `None` off Linux.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// (ops per wall-clock second, ops per process-CPU second) over `dur`,
/// after a short warm-up.
fn rate(dur: Duration, mut op: impl FnMut()) -> (f64, f64) {
    for _ in 0..200 {
        op();
    }
    let cpu0 = cpu_time();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur {
        for _ in 0..50 {
            op();
        }
        n += 50;
    }
    let wall = n as f64 / start.elapsed().as_secs_f64();
    let cpu = match (cpu0, cpu_time()) {
        (Some(a), Some(b)) if b > a => n as f64 / (b - a).as_secs_f64(),
        _ => f64::NAN,
    };
    (wall, cpu)
}

fn best(a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
    (a.0.max(b.0), a.1.max(b.1))
}

fn summary(f: &Fixture) {
    let d = Duration::from_secs(3);
    let (s, k) = (&f.setup.session, f.setup.key);
    // Direct before and after the pool; the better direct figure is used,
    // so order effects cannot flatter the pool.
    let wrap_direct = || drop(direct_wrap(s, k, f.dek.expose_secret_bytes()));
    let unwrap_direct = || drop(direct_unwrap(s, k, &f.wrapped));
    let wd1 = rate(d, wrap_direct);
    let wp = rate(d, || drop(f.rt.block_on(f.kek.wrap_key(&f.dek)).unwrap()));
    let wd = best(wd1, rate(d, wrap_direct));
    let ud1 = rate(d, unwrap_direct);
    let up = rate(d, || {
        drop(f.rt.block_on(f.kek.unwrap_key(&f.wrapped)).unwrap())
    });
    let ud = best(ud1, rate(d, unwrap_direct));
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\nPKCS#11 A256KW on SoftHSM2, one caller (load average: {})",
        load.trim()
    );
    for (name, p, dd) in [("wrap", wp, wd), ("unwrap", up, ud)] {
        println!(
            "  {name:<6} wall: pool {:>7.0} ops/s, direct {:>7.0} ops/s, pool/direct {:.2} | per CPU-second: pool {:>7.0}, direct {:>7.0}, pool/direct {:.2}",
            p.0, dd.0, p.0 / dd.0, p.1, dd.1, p.1 / dd.1
        );
    }
}

fn main() {
    let f = fixture();
    let mut c = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    bench(&mut c, &f);
    c.final_summary();
    summary(&f);
}

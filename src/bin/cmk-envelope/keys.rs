//! Key-encryption keys: loading `--kek` arguments, and `keygen`.

use std::sync::Arc;

#[cfg(feature = "azure")]
use cmk_envelope::kek::azure::{AzureKeyVaultKek, AzureKeyVaultResolver};
use cmk_envelope::scope::ScopeResolver;
use cmk_envelope::{Error, KeyEncryptionKey, KeyResolver, LocalKek, StaticResolver, WrapAlgorithm};

use crate::error::CliError;
use crate::KeygenArgs;

/// Loads one `--kek` argument.
///
/// A JWK file path; `https://…vault.azure.net/keys/…` (Azure Key Vault /
/// Managed HSM, feature `azure`); or a `pkcs11:` URI (RFC 7512, feature
/// `pkcs11`). A URL or URI of a backend the tool was built without is
/// recognised and refused with the feature to enable. This is the one
/// place where backends plug in.
pub(crate) fn load_kek(arg: &str) -> Result<Arc<dyn KeyEncryptionKey>, CliError> {
    // The argument is not echoed for URIs: a PKCS#11 URI may carry a PIN
    // (`pin-value=`), and a URL may carry a token.
    if arg.starts_with("https://") {
        #[cfg(feature = "azure")]
        return Ok(Arc::new(load_azure(arg)?));
        #[cfg(not(feature = "azure"))]
        return Err(CliError::msg(
            "--kek https://…: Azure Key Vault keys are not supported in this build (enable feature `azure`)",
        ));
    }
    if arg.starts_with("pkcs11:") {
        #[cfg(feature = "pkcs11")]
        return Ok(Arc::new(load_pkcs11(arg)?));
        #[cfg(not(feature = "pkcs11"))]
        return Err(CliError::msg(
            "--kek pkcs11:…: PKCS#11 keys are not supported in this build (enable feature `pkcs11`)",
        ));
    }
    let kek = LocalKek::from_jwk_file(arg)?;
    Ok(Arc::new(kek))
}

/// Loads every `--kek`, in order.
pub(crate) fn load_keks(args: &[String]) -> Result<Vec<Arc<dyn KeyEncryptionKey>>, CliError> {
    if args.is_empty() {
        return Err(CliError::msg("at least one --kek is needed"));
    }
    if args.len() > crate::MAX_KEKS {
        return Err(CliError::msg(format!(
            "too many --kek options ({}): an envelope holds at most {} keys",
            args.len(),
            crate::MAX_KEKS
        )));
    }
    args.iter().map(|a| load_kek(a)).collect()
}

/// An Azure Key Vault / Managed HSM key from
/// `https://NAME.vault.azure.net/keys/KEY[/VERSION][#ALG]` (`ALG`:
/// `RSA-OAEP-256`, the default, `RSA-OAEP`, or `A256KW` for a Managed HSM
/// `oct-HSM` key). Authentication uses the crate's credential chain
/// (`AZURE_*` environment variables, managed identity, `az login`). No call
/// is made until the key is used.
#[cfg(feature = "azure")]
fn load_azure(arg: &str) -> Result<AzureKeyVaultKek, CliError> {
    let (url, alg) = match arg.split_once('#') {
        Some((url, alg)) => (url, Some(alg)),
        None => (arg, None),
    };
    let mut builder = AzureKeyVaultKek::builder(url)?;
    if let Some(alg) = alg {
        builder = builder.algorithm_name(alg)?;
    }
    Ok(builder.build()?)
}

/// A PKCS#11 key from an RFC 7512 URI, e.g.
/// `pkcs11:token=kek-test;object=cmk;type=secret-key[#ALG]` (`ALG`:
/// `A256KW` or `A256KWP` for AES keys, `RSA-OAEP-256` or `RSA-OAEP` for RSA
/// keys; by default the one the key type suggests). The module comes from
/// `PKCS11_MODULE` (or the URI's `module-path`), the PIN from
/// `CMK_PKCS11_PIN`; a PIN inside the URI is refused. The token is opened
/// and the key probed once, now.
#[cfg(feature = "pkcs11")]
fn load_pkcs11(arg: &str) -> Result<cmk_envelope::Pkcs11Kek, CliError> {
    let (uri, alg) = match arg.rsplit_once('#') {
        Some((uri, alg)) => (uri, Some(alg)),
        None => (arg, None),
    };
    let mut builder = cmk_envelope::Pkcs11Kek::builder(uri);
    if let Some(alg) = alg {
        let alg = WrapAlgorithm::from_jose_name(alg).ok_or_else(|| {
            CliError::msg(
                "--kek pkcs11:…#ALG: ALG must be A256KW, A256KWP, RSA-OAEP-256 or RSA-OAEP",
            )
        })?;
        builder = builder.algorithm(alg);
    }
    Ok(builder.build()?)
}

/// The allow-list for decryption: local keys by their kid, and for each
/// Key Vault `--kek`, exactly the versioned key ids under that key URL (only
/// that version, if the URL names one).
#[derive(Default)]
pub(crate) struct CliResolver {
    local: StaticResolver,
    #[cfg(feature = "azure")]
    azure: Vec<AzureKeyVaultResolver>,
    /// The scopes a header names, opened from `--store` with `--cmk`.
    scopes: Vec<ScopeResolver>,
}

impl CliResolver {
    /// Also allows the scope key versions of `scopes`.
    pub(crate) fn add_scopes(&mut self, scopes: Vec<ScopeResolver>) {
        self.scopes.extend(scopes);
    }
}

impl KeyResolver for CliResolver {
    fn resolve(&self, kek_id: &str) -> Option<Arc<dyn KeyEncryptionKey>> {
        if let Some(k) = self.local.resolve(kek_id) {
            return Some(k);
        }
        if let Some(k) = self.scopes.iter().find_map(|s| s.resolve(kek_id)) {
            return Some(k);
        }
        #[cfg(feature = "azure")]
        if let Some(k) = self.azure.iter().find_map(|r| r.resolve(kek_id)) {
            return Some(k);
        }
        None
    }
}

/// The allow-list of every version of the Key Vault key `arg` names (for
/// a scope that follows its key's versions); `None` for other keys.
pub(crate) fn key_versions(arg: &str) -> Result<Option<Arc<dyn KeyResolver>>, CliError> {
    #[cfg(feature = "azure")]
    if arg.starts_with("https://") {
        return Ok(Some(Arc::new(AzureKeyVaultResolver::new(load_azure(arg)?))));
    }
    let _ = arg;
    Ok(None)
}

/// Loads every `--kek` into an allow-list for decryption.
pub(crate) fn load_resolver(args: &[String]) -> Result<CliResolver, CliError> {
    let mut resolver = CliResolver::default();
    #[cfg(feature = "azure")]
    for a in args.iter().filter(|a| a.starts_with("https://")) {
        resolver
            .azure
            .push(AzureKeyVaultResolver::new(load_azure(a)?));
    }
    let local: Vec<String> = args
        .iter()
        .filter(|a| !a.starts_with("https://"))
        .cloned()
        .collect();
    if !local.is_empty() {
        resolver.local = load_keks(&local)?.into_iter().collect();
    } else if !args.is_empty() && !cfg!(feature = "azure") {
        load_keks(args)?; // the same errors as for encryption
    }
    Ok(resolver)
}

/// `keygen`: generates a key, saves it as a private JWK (mode 0600,
/// atomically), and prints its kid on stdout.
pub(crate) fn keygen(args: &KeygenArgs) -> Result<(), CliError> {
    let alg: WrapAlgorithm = args.alg.into();
    if args.bits.is_some() && !alg.is_rsa() {
        return Err(CliError::msg(format!(
            "--bits applies only to RSA keys, not {alg}"
        )));
    }
    // Refuse early: RSA generation can take seconds.
    if !args.force && args.out.symlink_metadata().is_ok() {
        return Err(CliError::msg(format!(
            "{} already exists (use --force to overwrite)",
            args.out.display()
        )));
    }
    let kek = LocalKek::generate(alg, args.kid.clone(), args.bits)?;
    kek.save_jwk(&args.out, args.force).map_err(|e| match e {
        // Not a bad key file: writing it failed.
        Error::KeyFile { problem, .. } => {
            CliError::msg(format!("{}: {problem}", args.out.display()))
        }
        other => CliError::from(other),
    })?;
    println!("{}", kek.key_id());
    Ok(())
}

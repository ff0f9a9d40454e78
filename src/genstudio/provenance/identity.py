"""The studio's offline signing identity: a local root CA and an ES256 leaf certificate for C2PA, made on first run."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

try:
    import fcntl
except ImportError:  # Windows: no advisory lock; first-run races are then the user's to avoid.
    fcntl = None  # type: ignore[assignment]

ROOT_CERT_FILE = "root-ca.pem"
ROOT_KEY_FILE = "root-ca.key"
SIGNING_CHAIN_FILE = "signing-chain.pem"
SIGNING_KEY_FILE = "signing.key"
_LOCK_FILE = ".lock"

ROOT_VALIDITY = dt.timedelta(days=20 * 365)
LEAF_VALIDITY = dt.timedelta(days=2 * 365)
# A leaf this close to expiry is re-issued by the same root, so the root users may pin stays the same.
LEAF_RENEW_BEFORE = dt.timedelta(days=30)


class IdentityError(RuntimeError):
    """The key folder exists but its contents cannot be used."""


@dataclass(frozen=True)
class SigningIdentity:
    """Key and certificates that sign C2PA manifests. `cert_chain_pem` is leaf first, then the root."""

    keys_dir: Path
    cert_chain_pem: bytes
    root_cert_pem: bytes
    private_key_pem: bytes = field(repr=False)
    subject: str
    fingerprint_sha256: str
    not_after: dt.datetime

    def signer(self) -> c2pa.Signer:
        """A fresh c2pa Signer (ES256, no timestamp authority: signing stays offline)."""
        info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, self.cert_chain_pem, self.private_key_pem, None)
        return c2pa.Signer.from_info(info)


def _stage(path: Path, data: bytes, mode: int) -> Path:
    """Write `data` to a synced temporary file beside `path`; os.replace it into place to commit."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return Path(tmp)


def _write_atomic(files: list[tuple[Path, bytes, int]]) -> None:
    """Stage every file first, then rename them in order, so a crash leaves at most a tiny window."""
    staged: list[tuple[Path, Path]] = []
    try:
        for path, data, mode in files:
            staged.append((_stage(path, data, mode), path))
        for tmp, path in staged:
            os.replace(tmp, path)
    finally:
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


@contextlib.contextmanager
def _locked(keys_dir: Path) -> Iterator[None]:
    if fcntl is None:
        yield
        return
    fd = os.open(keys_dir / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_usage(*, digital_signature: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign,
        encipher_only=False, decipher_only=False,
    )


def _make_root(studio_id: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _new_key()
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, f"genstudio local root {studio_id}"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "genstudio (self-issued, not publicly trusted)"),
    ])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + ROOT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _make_leaf(root_key: ec.EllipticCurvePrivateKey, root: x509.Certificate,
               studio_id: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    # c2pa-rs rejects a self-signed end-entity certificate and wants: v3, critical keyUsage with
    # digitalSignature, an EKU without anyExtendedKeyUsage (emailProtection is accepted by default), CA false.
    key = _new_key()
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, f"genstudio signer {studio_id}"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "genstudio (self-issued, not publicly trusted)"),
    ])
    now = _now()
    not_after = min(now + LEAF_VALIDITY, root.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(root.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    return key, cert


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _issue_leaf(keys_dir: Path, root_key: ec.EllipticCurvePrivateKey, root: x509.Certificate) -> None:
    studio_id = root.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value.rsplit(" ", 1)[-1]
    leaf_key, leaf = _make_leaf(root_key, root, str(studio_id))
    # Key before chain: the chain file is what marks a complete identity.
    _write_atomic([
        (keys_dir / SIGNING_KEY_FILE, _key_pem(leaf_key), 0o600),
        (keys_dir / SIGNING_CHAIN_FILE, _cert_pem(leaf) + _cert_pem(root), 0o644),
    ])


def _create(keys_dir: Path) -> None:
    root_key, root = _make_root(secrets.token_hex(4))
    _write_atomic([
        (keys_dir / ROOT_KEY_FILE, _key_pem(root_key), 0o600),
        (keys_dir / ROOT_CERT_FILE, _cert_pem(root), 0o644),
    ])
    _issue_leaf(keys_dir, root_key, root)


def _load(keys_dir: Path) -> SigningIdentity:
    try:
        chain_pem = (keys_dir / SIGNING_CHAIN_FILE).read_bytes()
        key_pem = (keys_dir / SIGNING_KEY_FILE).read_bytes()
        certs = x509.load_pem_x509_certificates(chain_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (OSError, ValueError) as exc:
        raise IdentityError(f"cannot load the signing identity in {keys_dir}: {exc}") from exc
    leaf = certs[0]
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != leaf.public_key():
        raise IdentityError(f"{keys_dir / SIGNING_KEY_FILE} does not match {keys_dir / SIGNING_CHAIN_FILE}")
    return SigningIdentity(
        keys_dir=keys_dir,
        cert_chain_pem=chain_pem,
        root_cert_pem=_cert_pem(certs[-1]),
        private_key_pem=key_pem,
        subject=str(leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value),
        fingerprint_sha256=hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest(),
        not_after=leaf.not_valid_after_utc,
    )


def _renew_if_needed(keys_dir: Path, identity: SigningIdentity) -> SigningIdentity:
    if identity.not_after - _now() > LEAF_RENEW_BEFORE:
        return identity
    try:
        root_key = serialization.load_pem_private_key((keys_dir / ROOT_KEY_FILE).read_bytes(), password=None)
        root = x509.load_pem_x509_certificate((keys_dir / ROOT_CERT_FILE).read_bytes())
    except (OSError, ValueError) as exc:
        raise IdentityError(f"signing certificate in {keys_dir} expires {identity.not_after:%Y-%m-%d} "
                            f"and the root CA needed to renew it cannot be loaded: {exc}") from exc
    if not isinstance(root_key, ec.EllipticCurvePrivateKey) or root.not_valid_after_utc <= _now() + LEAF_RENEW_BEFORE:
        raise IdentityError(f"the root CA in {keys_dir} cannot issue a new signing certificate; "
                            "move the folder away to create a new identity")
    _issue_leaf(keys_dir, root_key, root)
    return _load(keys_dir)


def ensure_identity(keys_dir: Path) -> SigningIdentity:
    """Load the signing identity in `keys_dir`, creating it (folder 0700, keys 0600) on first use.

    Safe against concurrent first runs in several processes (advisory lock on POSIX). A leaf certificate
    near expiry is re-issued by the same local root. Raises IdentityError for an unusable folder."""
    keys_dir = Path(keys_dir)
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _locked(keys_dir):
        if not (keys_dir / SIGNING_CHAIN_FILE).exists():
            os.chmod(keys_dir, 0o700)  # mkdir's mode is filtered by the umask, and the folder may predate us
            _create(keys_dir)
        return _renew_if_needed(keys_dir, _load(keys_dir))

"""Large Blobs: uploads through the app (proxy) against pre-signed URLs straight to the object store.

The module's one declaration (docs/adding-a-module.md). `targets/large_blobs/` serves the variants;
`locustfiles/large_blobs.py` uploads generated bodies and checks the invariants and the security checks
against PostgreSQL and the embedded S3 store (SeaweedFS, `harness/services_s3.py`).
Thresholds were set from measured runs on a shared 2-core machine, with margin (see the workshop page).
"""

from __future__ import annotations

from harness.claims import Claim
from harness.spec import InvariantSpec, ModuleSpec, Scenario, ServerMetric, Variant
from targets.large_blobs.settings import Settings

MIB = 1 << 20
TRANSFER = "transfer"  # one upload (every step of it) or one download, as the client sees it
# each security check: 0 when the store refused the forged request, 1 when it accepted it
SECURITY = {
    "expired_url": "an upload with an expired pre-signed URL is refused by the store",
    "tampered_signature": "an upload with an edited signature is refused",
    "other_key": "a pre-signed URL reused for another key is refused",
    "wrong_content_type": "an upload with another Content-Type than the signed one is refused",
    "too_large": "an upload larger than the signed size is refused",
}


def _upload(name: str, mib: int, users: int, duration: float, warmup: float) -> Scenario:
    return Scenario(name=name, description=f"{users} users each upload {mib} MiB objects back to back",
                    variants=("proxy", "presigned"), users=users, duration_s=duration, warmup_s=warmup,
                    options=("--size-mib", str(mib)))


SPEC = ModuleSpec(
    id="large_blobs",
    title="Handling Large Blobs",
    port=18104,
    services=("postgres", "s3"),
    settings=Settings,
    variants=(
        Variant(name="proxy", sentence="the client uploads to the app, which streams the bytes to the object "
                "store and records the object in PostgreSQL; downloads stream back through the app"),
        Variant(name="presigned", sentence="the app signs a short-lived PUT URL for one key, size, type and "
                "SHA-256; the client uploads straight to the store, then the app checks the object and records "
                "it; downloads are a redirect to a pre-signed GET"),
        Variant(name="multipart", sentence="pre-signed part URLs uploaded in parallel; an interrupted upload "
                "resumes by re-sending only the parts the store lacks"),
    ),
    default_variants=("proxy", "presigned", "multipart"),
    scenarios=(
        _upload("upload_10mib", 10, 4, 6, 2),
        _upload("upload_32mib", 32, 2, 8, 2),
        _upload("upload_1mib", 1, 4, 5, 1),
        Scenario(name="multipart_resume", description="100 MiB objects in 8 MiB parts, 4 in parallel; every "
                 "upload is cut off after half its parts and resumed", variants=("multipart",), users=1,
                 duration_s=6, warmup_s=2, options=("--size-mib", "100", "--interrupt")),
        Scenario(name="download", description="4 users download the same 10 MiB objects: through the app, "
                 "or redirected to the store", variants=("proxy", "presigned"), users=4, duration_s=5,
                 warmup_s=1, options=("--size-mib", "10", "--download")),
        Scenario(name="security", description="forged uploads against the store: expired, tampered, other key, "
                 "wrong type, too large", variants=("presigned",), users=1, duration_s=2, warmup_s=1,
                 options=("--size-mib", "1")),
    ),
    # upload_1mib is not in the default run (5 minutes on 2 cores): `--scenarios upload_1mib` shows the fixed
    # cost per upload that makes pre-signing cost more CPU than proxying for small files.
    default_scenarios=("upload_10mib", "upload_32mib", "multipart_resume", "download", "security"),
    main_scenario="upload_10mib",
    latency_of=TRANSFER,
    server_metrics=(
        ServerMetric(name="cpu_s_per_mib", label="app CPU s/MiB uploaded",
                     numerator="harness_blob_app_cpu_seconds_total",
                     denominator="harness_blob_recorded_mib_total"),
        ServerMetric(name="app_bytes_in_per_upload", label="app bytes received/upload",
                     numerator='harness_blob_app_bytes_total{direction="received"}',
                     denominator="harness_blob_objects_recorded_total"),
        ServerMetric(name="app_bytes_out_per_download", label="app bytes sent/download",
                     numerator='harness_blob_app_bytes_total{direction="sent"}',
                     denominator="harness_blob_downloads_total"),
        ServerMetric(name="mib_recorded", label="MiB recorded", kind="increase",
                     numerator="harness_blob_recorded_mib_total"),
        ServerMetric(name="peak_rss_mib", label="app peak RSS", unit="MiB", kind="gauge",
                     numerator="harness_blob_rss_recent_peak_mib", reduce="max"),
        ServerMetric(name="rss_growth_mib", label="app RSS growth", unit="MiB", kind="gauge",
                     numerator="harness_blob_rss_recent_peak_mib", reduce="rise"),
    ),
    invariants=(
        InvariantSpec(name="missing_objects", sentence="every recorded object is in the store"),
        InvariantSpec(name="mismatched_objects", sentence="every recorded object has the recorded size and SHA-256 "
                      "in the store (read back and hashed)"),
        InvariantSpec(name="lost_uploads", sentence="every upload the app acknowledged is recorded"),
        InvariantSpec(name="bad_completes_accepted", sentence="no complete is accepted for an object the store "
                      "lacks or that does not match", enforced_for=("presigned", "multipart")),
        InvariantSpec(name="resume_resent_parts", sentence="a resumed multipart upload re-signs (so re-sends) "
                      "only the parts the store lacked", enforced_for=("multipart",)),
        *(InvariantSpec(name=f"security_{name}", sentence=sentence, enforced_for=("presigned",))
          for name, sentence in SECURITY.items()),
    ),
    columns=("rps", "p50_ms", "p95_ms", "p99_ms", "failures", "mib_recorded", "cpu_s_per_mib",
             "app_bytes_in_per_upload", "app_bytes_out_per_download", "peak_rss_mib", "rss_growth_mib",
             "cpu_ms_per_request", "load_cpu_us_per_request"),
    compare=("rps", "p95_ms", "cpu_s_per_mib", "app_bytes_in_per_upload"),
    progress=("cpu_s_per_mib", "app_bytes_in_per_upload"),
    bar_plots=("cpu_s_per_mib", "app_bytes_in_per_upload"),
    # Each sentence states its threshold (tests/unit/test_claim_sentences.py); the reference runs the thresholds
    # were set from are under results/reference/large_blobs/.
    claims=(
        Claim("cpu_per_mib_32", "At 32 MiB presigned costs the app at most 0.45x proxy's CPU per uploaded MiB: the "
              "bytes no longer cross it (its idle CPU and a fixed cost per upload remain).", "cpu_s_per_mib",
              "presigned", "<=", 0.45, baseline="proxy", scenario="upload_32mib"),
        Claim("cpu_per_mib_10", "At 10 MiB presigned costs the app at most 0.7x proxy's CPU per uploaded MiB: its "
              "fixed cost per upload (sign, HEAD, two rows) is already less than proxying the bytes.",
              "cpu_s_per_mib", "presigned", "<=", 0.7, baseline="proxy", scenario="upload_10mib"),
        Claim("proxy_bytes_in", "At 10 MiB the app receives at least 8,388,608 bytes (0.8 x 10 MiB) per proxy "
              "upload: every byte crosses the app.", "app_bytes_in_per_upload", "proxy", ">=", 0.8 * 10 * MIB,
              scenario="upload_10mib",
              demonstration="holds by construction: proxy's upload route receives the file's bytes"),
        Claim("presigned_bytes_in", "At 10 MiB the app receives at most 4,096 bytes per presigned upload: JSON, "
              "not the file.", "app_bytes_in_per_upload", "presigned", "<=", 4096, scenario="upload_10mib",
              demonstration="holds by construction: presigned's client sends the file to the store, and the app "
              "only signs and records it"),
        Claim("throughput_10", "At 10 MiB and the same concurrency presigned completes at least 0.6x proxy's "
              "uploads/s.", "rps", "presigned", ">=", 0.6, baseline="proxy", scenario="upload_10mib"),
        Claim("p95_10", "At 10 MiB presigned's p95 upload latency is at most 1.6x proxy's.", "p95_ms", "presigned",
              "<=", 1.6, baseline="proxy", scenario="upload_10mib"),
        Claim("proxy_memory_flat", "The proxy streams: during the 32 MiB uploads proxy's peak RSS rises at most "
              "10 MiB above its RSS when the window starts, under a third of one file.", "rss_growth_mib", "proxy",
              "<=", 10, scenario="upload_32mib"),
        Claim("presigned_bytes_out", "The app sends at most 4,096 bytes per presigned download: a redirect, not "
              "the file.", "app_bytes_out_per_download", "presigned", "<=", 4096, scenario="download",
              demonstration="holds by construction: presigned's download route answers a redirect to the store"),
        Claim("download_throughput", "presigned completes at least 1.5x proxy's downloads/s: a redirected download "
              "skips the app's copy.", "rps", "presigned", ">=", 1.5, baseline="proxy", scenario="download"),
        Claim("resume_only_missing", "When a multipart upload resumes (multipart_resume), it re-sends exactly 0 "
              "parts the store already holds.", "resume_resent_parts", "multipart", "==", 0,
              scenario="multipart_resume",
              demonstration="restates the invariant resume_resent_parts, enforced for multipart"),
        Claim("no_bad_complete", "At 10 MiB presigned's complete accepts exactly 0 objects the store lacks or that "
              "do not match.", "bad_completes_accepted", "presigned", "==", 0, scenario="upload_10mib",
              demonstration="restates the invariant bad_completes_accepted, enforced for presigned"),
        *(Claim(f"security_{name}", f"Security: exactly 0 presigned uploads of this forgery are accepted: {sentence}.",
                f"security_{name}", "presigned", "==", 0, scenario="security",
                demonstration=f"restates the invariant security_{name}, enforced for presigned")
          for name, sentence in SECURITY.items()),
    ),
)

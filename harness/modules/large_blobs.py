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
                     numerator="harness_blob_rss_peak_mib", reduce="max"),
        ServerMetric(name="rss_growth_mib", label="app peak RSS growth", unit="MiB", kind="increase",
                     numerator="harness_blob_rss_peak_mib"),
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
    claims=(
        Claim("cpu_per_mib_32", "Pre-signed uploads take the bytes off the app: at 32 MiB its CPU per uploaded MiB "
              "falls several-fold (the process's idle CPU and a fixed cost per upload remain).", "cpu_s_per_mib",
              "presigned", "<=", 0.45, baseline="proxy", scenario="upload_32mib"),
        Claim("cpu_per_mib_10", "At 10 MiB the app's fixed cost per upload (sign, HEAD, two rows) already "
              "costs less than proxying the bytes.", "cpu_s_per_mib", "presigned", "<=", 0.7, baseline="proxy",
              scenario="upload_10mib"),
        Claim("proxy_bytes_in", "With a proxy every byte crosses the app: it receives the whole file per upload.",
              "app_bytes_in_per_upload", "proxy", ">=", 0.8 * 10 * MIB, scenario="upload_10mib"),
        Claim("presigned_bytes_in", "With a pre-signed URL none does: the app receives a few hundred bytes of JSON "
              "per upload.", "app_bytes_in_per_upload", "presigned", "<=", 4096, scenario="upload_10mib"),
        Claim("throughput_10", "At the same concurrency the store, not the app, bounds throughput on this machine: "
              "pre-signed uploads are no slower.", "rps", "presigned", ">=", 0.6, baseline="proxy",
              scenario="upload_10mib"),
        Claim("p95_10", "... and their p95 is no worse within the noise of a shared machine.", "p95_ms", "presigned",
              "<=", 1.6, baseline="proxy", scenario="upload_10mib"),
        Claim("proxy_memory_flat", "The proxy streams: two concurrent 32 MiB uploads (after 10 MiB ones) raise its "
              "peak memory by less than a third of one file.", "rss_growth_mib", "proxy", "<=", 10,
              scenario="upload_32mib"),
        Claim("presigned_bytes_out", "A redirected download sends the app's client a redirect, not the file.",
              "app_bytes_out_per_download", "presigned", "<=", 4096, scenario="download"),
        Claim("download_throughput", "Redirected downloads skip the app's copy: more downloads per second.",
              "rps", "presigned", ">=", 1.5, baseline="proxy", scenario="download"),
        Claim("resume_only_missing", "A resumed multipart upload re-sends only the parts the store lacks.",
              "resume_resent_parts", "multipart", "==", 0, scenario="multipart_resume"),
        Claim("no_bad_complete", "complete never records an object the store lacks.", "bad_completes_accepted",
              "presigned", "==", 0, scenario="upload_10mib"),
        *(Claim(f"security_{name}", f"Security: {sentence} (0: refused; a store that accepts it fails this "
                "claim and the invariant says NOT ENFORCED).", f"security_{name}", "presigned", "==", 0,
                scenario="security") for name, sentence in SECURITY.items()),
    ),
)

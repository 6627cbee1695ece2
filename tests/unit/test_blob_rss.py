"""The large_blobs target's RSS gauge reports the peak since the previous scrape, not a high-water mark
of the process's life: memory that grows after an earlier, higher peak still shows as a rise."""

from targets.large_blobs.metrics import MIB, ProcessCollector


def test_growth_after_an_earlier_higher_peak_is_visible():
    collector = ProcessCollector(sampler=False)
    big = bytearray(96 * MIB)  # an earlier phase's peak
    big[::4096] = b"x" * len(big[::4096])  # touch every page: resident
    collector.sample()
    earlier = collector.take_peak()
    del big
    collector.take_peak()  # the scrape interval in which it was freed
    baseline = collector.take_peak()  # the next window starts here, well below the earlier peak
    assert earlier - baseline > 64 * MIB
    leak = bytearray(40 * MIB)
    leak[::4096] = b"y" * len(leak[::4096])
    collector.sample()
    rise = collector.take_peak() - baseline
    assert rise > 32 * MIB  # a high-water mark would have shown 0: the earlier peak was higher
    assert len(leak)

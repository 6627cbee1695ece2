"""The Locust `LoadTestShape` that plays a profile from `harness.shapes` (kept apart: importing
locust patches the process for gevent, and the harness CLI reads the profiles without that)."""

from __future__ import annotations

from locust import LoadTestShape

from harness.shapes import Tick, plan, rate_fraction


class ProfileShape(LoadTestShape):
    """Plays the profile named by `--profile` with Locust's own -u, -r and -t."""

    use_common_options = True

    def tick(self) -> Tick:
        options = self.runner.environment.parsed_options
        if options.rate > 0:  # open model: the pool stays whole, the arrival rate follows the profile
            if rate_fraction(options.profile, self.get_run_time(), options.run_time) is None:
                return None
            users = options.num_users or 10
            return users, options.spawn_rate or users
        return plan(options.profile, self.get_run_time(), options.num_users or 10, options.run_time,
                    options.spawn_rate)

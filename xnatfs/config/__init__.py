"""Mount options and their values: `options` (the table, the one parser, `MountConfig`,
`Tunables`) and `values` (sizes, seconds, ids, modes, the URL, where caches go)."""

from xnatfs.config.options import (
    COMMAND_LINE as COMMAND_LINE,
)
from xnatfs.config.options import (
    CONFIG as CONFIG,
)
from xnatfs.config.options import (
    MOUNT_OPTIONS as MOUNT_OPTIONS,
)
from xnatfs.config.options import (
    MOUNTPOINT as MOUNTPOINT,
)
from xnatfs.config.options import (
    OPTIONS as OPTIONS,
)
from xnatfs.config.options import (
    SECRET_KEYS as SECRET_KEYS,
)
from xnatfs.config.options import (
    URL as URL,
)
from xnatfs.config.options import (
    MountConfig as MountConfig,
)
from xnatfs.config.options import (
    OptionSpec as OptionSpec,
)
from xnatfs.config.options import (
    Origin as Origin,
)
from xnatfs.config.options import (
    Tunables as Tunables,
)
from xnatfs.config.options import (
    build_config as build_config,
)
from xnatfs.config.options import (
    canonical as canonical,
)
from xnatfs.config.options import (
    config_file as config_file,
)
from xnatfs.config.options import (
    option_spec as option_spec,
)
from xnatfs.config.options import (
    parse_option as parse_option,
)
from xnatfs.config.options import (
    refuse_secret as refuse_secret,
)
from xnatfs.config.values import (
    PREFETCH_MODES as PREFETCH_MODES,
)
from xnatfs.config.values import (
    SELECTOR_MODES as SELECTOR_MODES,
)
from xnatfs.config.values import (
    default_cache_root as default_cache_root,
)
from xnatfs.config.values import (
    normalize_url as normalize_url,
)
from xnatfs.config.values import (
    parse_bool as parse_bool,
)
from xnatfs.config.values import (
    parse_id as parse_id,
)
from xnatfs.config.values import (
    parse_mode as parse_mode,
)
from xnatfs.config.values import (
    parse_positive_int as parse_positive_int,
)
from xnatfs.config.values import (
    parse_prefetch as parse_prefetch,
)
from xnatfs.config.values import (
    parse_project as parse_project,
)
from xnatfs.config.values import (
    parse_seconds as parse_seconds,
)
from xnatfs.config.values import (
    parse_selectors as parse_selectors,
)
from xnatfs.config.values import (
    parse_size as parse_size,
)
from xnatfs.config.values import (
    server_dir_name as server_dir_name,
)

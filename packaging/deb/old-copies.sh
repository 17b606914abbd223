# --- before an upgrade from a version that shipped the copies: the .deb and the .rpm share this ---
# The original agent (and pdagent before the copies moved to /usr/share)
# shipped the unit and the init script as package files in
# /var/lib/pdagent/scripts, so the upgrade has dpkg or rpm remove those old
# files by path, one last time. Through a link the pdagent account put at
# scripts/, that would delete files of those names wherever the link points:
# such a link goes first. (pdagent.layout makes the directory root's again.)
# (No percent sign in this file: the rpm spec expands it as macros.)
pdagent_drop_scripts_link() {
    if [ -L /var/lib/pdagent/scripts ]; then
        echo "pdagent: /var/lib/pdagent/scripts was a symbolic link: removed it" >&2
        rm -f /var/lib/pdagent/scripts || true
    fi
}

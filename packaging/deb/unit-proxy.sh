# --- the unit's proxy lines across an upgrade: the .deb and the .rpm share this ---
# The Agent guide has admins add proxy Environment= lines to the unit, which an
# upgrade replaces: the pre-install script saves them, the post-install script
# puts them back. They are kept where only root can write, never in
# /var/lib/pdagent (the pdagent account could plant a link there, or lines such
# as ExecStartPre=+... for root to splice into the unit), and only lines of
# this one pattern are ever saved or put back.
# (No percent sign in this file: the rpm spec expands it as macros.)
PDAGENT_PROXY_LINE='^[[:space:]]*Environment=.*(http|https|ftp|no|all)_proxy='
PDAGENT_SAVE_DIR=/var/lib/pdagent-upgrade
PDAGENT_SAVED_PROXY_LINES=$PDAGENT_SAVE_DIR/unit-proxy-environment

# True if the save directory is a real directory of root's, mode 0700; makes
# it if missing. /var/lib is root's: this only guards against surprises.
pdagent_save_dir_ready() {
    mkdir -m 0700 "$PDAGENT_SAVE_DIR" 2>/dev/null || true
    if [ -n "$(find "$PDAGENT_SAVE_DIR" -maxdepth 0 -type d -user 0 -perm 0700 2>/dev/null)" ]; then
        return 0
    fi
    echo "pdagent: $PDAGENT_SAVE_DIR is not a directory only root can write; not using it" >&2
    return 1
}

# Saves the proxy lines of unit $1, if it has any.
pdagent_save_proxy_lines() {
    if [ -f "$1" ] && grep -Eiq "$PDAGENT_PROXY_LINE" "$1" && pdagent_save_dir_ready; then
        grep -Ei "$PDAGENT_PROXY_LINE" "$1" > "$PDAGENT_SAVED_PROXY_LINES"
    fi
}

# Puts the saved proxy lines back into unit $1 (unless it has some already),
# after the ExecStartPre chown line as the Agent guide has them; forgets them.
pdagent_restore_proxy_lines() {
    [ -s "$PDAGENT_SAVED_PROXY_LINES" ] && pdagent_save_dir_ready || return 0
    pdagent_checked=$PDAGENT_SAVED_PROXY_LINES.checked
    if [ -f "$1" ] && ! grep -Eiq "$PDAGENT_PROXY_LINE" "$1" \
            && grep -Ei "$PDAGENT_PROXY_LINE" "$PDAGENT_SAVED_PROXY_LINES" > "$pdagent_checked"; then
        if grep -q '^ExecStartPre=/bin/chown .* /var/run/pdagent$' "$1"; then
            sed -i "\\#^ExecStartPre=/bin/chown .* /var/run/pdagent\$#r $pdagent_checked" "$1"
        else
            sed -i "/^\\[Service\\]/r $pdagent_checked" "$1"
        fi
        echo "pdagent: kept your proxy settings in $1" >&2
    fi
    rm -f "$PDAGENT_SAVED_PROXY_LINES" "$pdagent_checked"
}
# --- end of the proxy-line part ---

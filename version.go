package pecreds

// Version is the plugin's semantic version, with a leading v. The backend reports it to Vault as
// its running version; scripts/dev.sh and the tests register the plugin under it.
const Version = "v0.2.0"

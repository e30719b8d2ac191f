"""The LDAP source: watches OpenLDAP, Active Directory and other directories and turns their changes into events."""
